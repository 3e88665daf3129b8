"""Triton model repositories: config.pbtxt read back with Triton's own ModelConfig schema."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from cli_support import assert_one_line_error, run_cli

from zoodeploy.card import LatencyStats, load_card, save_card
from zoodeploy.errors import ArtifactError, ValidationError
from zoodeploy.fileio import sha256_file
from zoodeploy.package.triton import (RepositoryConfig, make_repository, max_batch_size, preferred_batch_sizes,
                                      queue_delay_us, verify_repository)

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")

# measured images/s by batch: 8 pays (x3), 16 pays (x1.5), 32 barely (x1.04), 128 pays again (x2)
THROUGHPUT = {1: 1000.0, 8: 3000.0, 16: 4500.0, 32: 4700.0, 128: 9000.0}


def _stats(batch: int, throughput: float, p50_ms: float = 0.8) -> LatencyStats:
    return LatencyStats(batch=batch, runs=50, p50_ms=p50_ms, p90_ms=p50_ms, p99_ms=p50_ms, mean_ms=p50_ms,
                        throughput=throughput)


@pytest.fixture(scope="module")
def measured(trained, tmp_path_factory):
    """lenet5 with fp32 selected and latency figures planted in its card, as `zoodeploy bench` writes them."""
    art = tmp_path_factory.mktemp("triton") / "lenet5"
    shutil.copytree(trained("lenet5"), art)
    card = load_card(art)
    card.variants["fp32"].latency = {str(b): _stats(b, t) for b, t in THROUGHPUT.items()}
    card.selected = "fp32"
    save_card(art, card)
    return art


@pytest.fixture(scope="module")
def repo(measured, tmp_path_factory):
    return make_repository(measured, tmp_path_factory.mktemp("out") / "models")


def parse_config(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_config_is_tritons_schema_and_says_what_the_artifact_is(repo, measured):
    card = load_card(measured)
    config = parse_config(repo.model_dir / "config.pbtxt")
    T = model_config_pb2
    # the largest measured batch (128) over the default 64
    assert (config.name, config.platform, config.max_batch_size) == ("lenet5", "onnxruntime_onnx", 128)
    [inp], [out] = config.input, config.output
    assert (inp.name, inp.data_type, list(inp.dims), inp.format) == (
        card.input_name, T.TYPE_FP32, [3, card.input_size, card.input_size], T.ModelInput.FORMAT_NCHW)
    assert (out.name, out.data_type, list(out.dims), out.label_filename) == (
        card.output_name, T.TYPE_FP32, [card.num_classes], "labels.txt")
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 128]
    assert config.dynamic_batching.max_queue_delay_microseconds == 800  # one batch-1 run, p50 0.8 ms
    [group] = config.instance_group
    assert (group.kind, group.count) == (T.ModelInstanceGroup.KIND_CPU, 1)
    [warmup] = config.model_warmup
    assert warmup.batch_size == 1 and warmup.inputs[card.input_name].zero_data
    assert list(warmup.inputs[card.input_name].dims) == [3, card.input_size, card.input_size]


def test_repository_files_are_the_artifacts(repo, measured):
    card = load_card(measured)
    v = card.variants["fp32"]
    model = repo.model_dir / "1" / "model.onnx"
    assert sha256_file(model) == v.sha256 == repo.manifest["source"]["variant_sha256"]
    assert (repo.model_dir / "labels.txt").read_text().splitlines() == card.labels
    prep = json.loads((repo.model_dir / "preprocessing.json").read_text())
    assert prep["preprocessing"] == json.loads(json.dumps(card.preprocessing.to_dict()))
    assert prep["input"]["shape"] == ["N", 3, card.input_size, card.input_size]
    manifest = verify_repository(repo.path)
    assert manifest["files"]["1/model.onnx"]["sha256"] == v.sha256
    assert set(manifest["files"]) == {"config.pbtxt", "labels.txt", "preprocessing.json", "1/model.onnx"}
    assert sorted(p.name for p in repo.path.iterdir()) == ["lenet5"]  # nothing else in the repository root


def test_a_changed_file_fails_verification(repo, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(repo.path, copy)
    (copy / "lenet5" / "labels.txt").write_text("tampered\n")
    with pytest.raises(ValidationError, match="labels.txt differ from manifest.json"):
        verify_repository(copy)


def test_batching_policy_follows_the_measured_throughput(measured):
    v = load_card(measured).variants["fp32"]
    assert preferred_batch_sizes(v, 64) == [8, 16]
    assert preferred_batch_sizes(v, 8) == [8]
    assert preferred_batch_sizes(v, 256) == [8, 16, 128]
    assert max_batch_size(v, fixed_batch=None, wanted=None) == 128  # the largest measured batch
    assert max_batch_size(v, fixed_batch=None, wanted=16) == 16
    assert max_batch_size(v, fixed_batch=1, wanted=None) == 0  # a fixed-batch export cannot batch
    unmeasured = v.model_copy(update={"latency": {}})
    assert preferred_batch_sizes(unmeasured, 64) == [] and queue_delay_us(unmeasured) == 500
    assert max_batch_size(unmeasured, None, None) == 64
    slow = v.model_copy(update={"latency": {"1": _stats(1, 10.0, p50_ms=100.0)}})
    assert queue_delay_us(slow) == 5000  # never hold a request longer than 5 ms


def test_gpu_target_and_max_batch(measured, tmp_path):
    repo = make_repository(measured, tmp_path / "gpu", RepositoryConfig(target="gpu", max_batch=16))
    config = parse_config(repo.model_dir / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.max_batch_size == 16 and list(config.dynamic_batching.preferred_batch_size) == [8, 16]


def test_refuses_what_triton_cannot_load(measured, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ArtifactError, match="not an empty folder"):
        make_repository(measured, tmp_path / "full")
    card = load_card(measured)
    card.variants["int8-ort"] = card.variants["fp32"].model_copy(update={"name": "int8-ort", "file": "int8.ort"})
    art = tmp_path / "art"
    shutil.copytree(measured, art)
    save_card(art, card)
    with pytest.raises(ArtifactError, match="no Triton backend"):
        make_repository(art, tmp_path / "ort", RepositoryConfig(variant="int8-ort"))
    assert not (tmp_path / "ort").exists()


def test_cli_writes_a_repository(measured, tmp_path):
    out = tmp_path / "models"
    r = run_cli("package", measured, "--format", "triton", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["model"] == "lenet5" and (out / "lenet5" / "1" / "model.onnx").is_file()
    assert parse_config(out / "lenet5" / "config.pbtxt").platform == "onnxruntime_onnx"
    assert_one_line_error(run_cli("package", measured, "--format", "triton", "--target", "mobile",
                                  "-o", tmp_path / "m"), "does not apply to --format triton")
    assert_one_line_error(run_cli("package", measured, "--format", "triton", "-o", out), "not an empty folder")


def test_config_parses_for_a_fixed_batch_export(measured, tmp_path):
    import onnx
    art = tmp_path / "fixed"
    shutil.copytree(measured, art)
    model = onnx.load(str(art / "fp32.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(art / "fp32.onnx"))
    card = load_card(art)
    card.variants["fp32"].sha256 = sha256_file(art / "fp32.onnx")
    save_card(art, card)
    repo = make_repository(art, tmp_path / "models")
    config = parse_config(repo.model_dir / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 3, 32, 32] and list(config.output[0].dims) == [1, 10]
    assert np.prod(config.model_warmup[0].inputs["input"].dims) == 3 * 32 * 32
