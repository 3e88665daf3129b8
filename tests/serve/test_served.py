"""The serving glue without a server: config, variant choice, request decoding, answers."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from zoodeploy.artifact import resolve_variant
from zoodeploy.card import (Accuracy, BuildRecord, LatencyStats, Precision, RunSettings, Runtime, ThroughputStats,
                            load_card, save_card, update_card)
from zoodeploy.errors import ArtifactError
from zoodeploy.preprocess import Preprocessing, load_image, preprocess, softmax
from zoodeploy.recipes import Fp16Recipe
from zoodeploy.runtime.ort import TENSORRT
from zoodeploy.serve import (Plan, RequestError, ServeConfig, ServeConfigError, images_to_tensor, ort_threads,
                             provider_for, resources_for, run_options, tensor_input, top_k)
from zoodeploy.serve.served import ServedModel
from zoodeploy.serve.store import import_artifact

PREP = Preprocessing(size=32, resize=32)


def png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def digit_like(mode: str) -> Image.Image:
    """An 8x8-ish test pattern in any PIL mode a client might send."""
    gray = (np.arange(24 * 20).reshape(24, 20) % 251).astype(np.uint8)
    base = Image.fromarray(gray, "L")
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit grayscale: mode I;16
    return base.convert(mode)


# --- config --------------------------------------------------------------------------------------

def test_config_reads_args_over_env_over_defaults():
    env = {"ZOODEPLOY_ARTIFACT": "/a", "ZOODEPLOY_MAX_BATCH_SIZE": "16", "ZOODEPLOY_WORKERS": "2"}
    cfg = ServeConfig.load({"workers": "3"}, env)
    assert (cfg.artifact, cfg.max_batch_size, cfg.workers) == ("/a", 16, 3)
    assert ServeConfig.load({}, {}).source == "artifacts/default"
    assert ServeConfig.load({"model": "m:v"}, {}).source == "m:v"


@pytest.mark.parametrize("args, needle", [
    ({"artifact": "a", "model": "m"}, "not both"),
    ({"workers": "two"}, "integer"),
    ({"max_batch_size": "1"}, ">= 2"),
    ({"provider": "tpu"}, "cpu, cuda, tensorrt"),
    ({"threads": "0"}, ">= 1"),
    ({"modle": "m"}, "unknown bento argument"),
])
def test_bad_config_says_what_is_wrong(args, needle):
    with pytest.raises(ServeConfigError, match=needle):
        ServeConfig.load(args, {})


def test_threads_follow_the_worker_count():
    assert ort_threads(1, cores=16) == 16
    assert ort_threads(4, cores=16) == 4
    assert ort_threads(3, cores=2) == 1


# --- which variant -------------------------------------------------------------------------------

def _acc(top1: float) -> Accuracy:
    return Accuracy(n=360, top1=top1, top5=100.0)


def _card_with_variants(artifact):
    card = load_card(artifact)
    fp32 = card.variants["fp32"]
    card.variants["int8"] = fp32.model_copy(deep=True, update={"name": "int8", "precision": Precision.int8})
    card.variants["trt-fp16"] = fp32.model_copy(deep=True, update={"name": "trt-fp16", "runtime": Runtime.tensorrt})
    return card


def test_selected_variant_wins(trained):
    card = _card_with_variants(trained("mobilenet_v2"))
    card.selected = "int8"
    assert resolve_variant(card).name == "int8"
    assert resolve_variant(card, "fp32").name == "fp32"
    with pytest.raises(ArtifactError, match="no variant 'fp16'"):
        resolve_variant(card, "fp16")


def _refusal(card) -> str:
    """The one line `resolve_variant` refuses a card that selects nothing with (predict and package too)."""
    with pytest.raises(ArtifactError) as e:
        resolve_variant(card)
    assert "selects no variant" in str(e.value) and "\n" not in str(e.value)
    return str(e.value)


def test_a_card_without_a_selection_is_refused_even_with_measured_variants(trained, tmp_path):
    card = _card_with_variants(trained("mobilenet_v2"))
    card.variants["fp32"].accuracy = _acc(97.0)
    card.variants["int8"].accuracy = _acc(97.0)
    card.variants["int8"].latency["1"] = LatencyStats(batch=1, runs=40, p50_ms=0.5, p90_ms=0.6, p99_ms=0.7,
                                                      mean_ms=0.5, throughput=2000.0)
    card.variants["trt-fp16"].accuracy = _acc(99.0)
    art = tmp_path / "art"
    shutil.copytree(trained("mobilenet_v2"), art)
    save_card(art, card)
    line = _refusal(card)
    for config in (ServeConfig(artifact=str(art)), ServeConfig(artifact=str(art), provider="cuda")):
        with pytest.raises(ArtifactError) as e:
            Plan.make(config)  # nothing is guessed for the server, on a CPU or a GPU
        assert str(e.value) == line


def test_a_card_without_a_selection_or_measurements_is_refused(trained):
    card = load_card(trained("mobilenet_v2"))
    line = _refusal(card)
    with pytest.raises(ArtifactError) as e:
        import_artifact(trained("mobilenet_v2"))  # the model store asks the same rule
    assert str(e.value) == line


def test_gpu_variants_ask_for_a_gpu(trained):
    card = _card_with_variants(trained("mobilenet_v2"))
    trt, onnx = card.variants["trt-fp16"], card.variants["fp32"]
    assert provider_for(onnx, ServeConfig()) == ("cpu", None) and resources_for("cpu") == {}
    assert provider_for(trt, ServeConfig()) == ("cuda", None) and resources_for("cuda") == {"gpu": 1}
    assert provider_for(onnx, ServeConfig(provider="tensorrt")) == ("tensorrt", None)
    with pytest.raises(ArtifactError, match="only on an NVIDIA GPU"):
        provider_for(trt, ServeConfig(provider="cpu"))
    fp16 = onnx.model_copy(update={"name": "fp16", "recipe": Fp16Recipe(onnxruntime="test")})  # made for GPUs
    assert provider_for(fp16, ServeConfig()) == ("cuda", None)
    provider, note = provider_for(fp16, ServeConfig(provider="cpu"))  # allowed, never silently
    assert provider == "cpu" and "made for a GPU" in note


def test_provider_choices_map_to_run_options():
    cpu = run_options(ServeConfig(threads=2), "cpu")
    assert (cpu.device, cpu.extra_providers, cpu.threads, cpu.spin) == ("cpu", (), 2, False)
    assert run_options(ServeConfig(), "cuda").device == "cuda" and run_options(ServeConfig(), "cuda").extra_providers == ()
    trt = run_options(ServeConfig(), "tensorrt")  # TensorRT in front of CUDA: an ONNX Runtime detail
    assert trt.device == "cuda" and trt.extra_providers == (TENSORRT,)


def test_plan_reads_the_artifact(artifact):
    art = artifact("mobilenet_v2")
    card = load_card(art)
    card.selected = "fp32"
    save_card(art, card)
    plan = Plan.make(ServeConfig(artifact=str(art)))
    assert (plan.variant, plan.provider, plan.notes, plan.input_shape) == ("fp32", "cpu", (), (3, 32, 32))
    with pytest.raises(ArtifactError, match="no card.json"):
        Plan.make(ServeConfig(artifact=str(art / "nope")))


def test_a_card_built_for_throughput_is_served_with_its_measured_batch_and_requests_in_flight(artifact):
    """`build --select throughput` recorded batch 8 x 2 requests in flight for fp32: the server runs two
    sessions (one thread each) and batches up to 16 images, with the same logits; what the server is
    told wins; a card selected by latency, or a timing not settled, keeps one request and 32."""
    art = artifact("mobilenet_v2")
    best = ThroughputStats(throughput=900.0, batch=8, streams=2, threads=2, runs=20,
                           settings=RunSettings(runtime="onnxruntime", stable=True))
    with update_card(art) as card:
        card.selected = "fp32"
        card.variants["fp32"].throughput = best
        card.provenance.build = BuildRecord(target="cpu", max_drop=1.0, select_batch=1, batches=[1],
                                            objective="throughput")
    config = ServeConfig(artifact=str(art), threads=2)
    plan = Plan.make(config)
    assert (plan.streams, plan.max_batch_size) == (2, 32) and "batch 8 x 2 in flight" in plan.batching_note
    told = Plan.make(replace(config, streams=1, max_batch_size=4))
    assert (told.streams, told.max_batch_size, told.batching_note) == (1, 4, None)
    x = np.random.default_rng(0).standard_normal((7, *plan.input_shape)).astype(np.float32)
    served = ServedModel(plan, config)
    try:
        assert served.describe()["mode"] == "2 sessions in flight" and served.describe()["max_batch_size"] == 32
        assert [r.settings["intra_op_threads"] for r in served.runner.runners] == [1, 1]
        two = served.run(x)
    finally:
        served.runner.close()
    one = ServedModel(replace(plan, streams=1), config)
    try:
        np.testing.assert_allclose(two, one.run(x), rtol=1e-4, atol=1e-5)
    finally:
        one.runner.close()
    with update_card(art) as card:
        card.variants["fp32"].throughput = best.model_copy(update={"batch": 64})
    assert Plan.make(config).max_batch_size == 128  # 64 x 2: more than the default 32
    for change in ({"objective": "latency"}, None):
        with update_card(art) as card:
            if change:
                card.provenance.build = card.provenance.build.model_copy(update=change)
            else:
                card.variants["fp32"].throughput = best.model_copy(
                    update={"settings": RunSettings(runtime="onnxruntime", stable=False)})
        plan = Plan.make(config)
        assert (plan.streams, plan.max_batch_size, plan.batching_note) == (1, 32, None)


# --- requests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                       ("LA", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("1", "BMP")])
def test_images_decode_as_evaluate_does(mode, fmt):
    data = png(digit_like(mode), fmt)
    x = images_to_tensor([data, data], PREP, max_pixels=10_000)
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], preprocess(load_image(data), PREP))


@pytest.mark.parametrize("data, needle", [
    (b"", "empty image data"),
    (b"this is not an image", "not a readable image"),
    (png(digit_like("L"))[:60], "not a readable image"),
    (png(Image.new("L", (200, 100))), "over the limit of 10000"),
])
def test_bad_images_are_refused_with_the_reason(data, needle):
    with pytest.raises(RequestError, match=needle):
        images_to_tensor([data], PREP, max_pixels=10_000)


def test_a_bad_image_in_a_batch_is_named_by_position():
    good = png(digit_like("L"))
    with pytest.raises(RequestError, match="image 2 of 3"):
        images_to_tensor([good, b"junk", good], PREP, max_pixels=10_000)


def test_tensor_input_accepts_numbers_and_refuses_the_rest():
    ok = tensor_input(np.zeros((2, 3, 32, 32), np.float64), (3, 32, 32), max_rows=4)
    assert ok.dtype == np.float32 and ok.shape == (2, 3, 32, 32)
    cases = [(np.zeros((1, 3, 16, 16)), "shape"), (np.zeros((3, 32, 32)), "shape"),
             (np.array([["a"]]), "numbers"), (np.ones((1, 3, 32, 32), bool), "numbers"),
             (np.zeros((5, 3, 32, 32)), "limit of 4"), (np.full((1, 3, 32, 32), np.nan), "NaN")]
    for x, needle in cases:
        with pytest.raises(RequestError, match=needle):
            tensor_input(x, (3, 32, 32), max_rows=4)


def test_top_k_is_softmax_of_the_logits():
    logits = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]], np.float32)
    out = top_k(logits, ["a", "b", "c"], k=2)
    probs = softmax(logits)
    assert [o["label"] for o in out] == ["b", "a"]
    assert out[0]["top_k"][1]["label"] == "c" and len(out[0]["top_k"]) == 2
    assert out[0]["probability"] == pytest.approx(float(probs[0, 1]))
    assert len(top_k(logits, ["a", "b", "c"], k=50)[0]["top_k"]) == 3
