"""Export behaviour: batch handling, the exported program, and failures that leave nothing behind."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard, load_card
from zoodeploy.errors import ArtifactError, ExportError, UnknownNameError, ValidationError
from zoodeploy.evaluate.accuracy import accuracy_of
from zoodeploy.export import (FP32_FILE, PROGRAM, PROGRAM_FILE, ExportConfig, ExportFormat, Tolerance,
                              export_artifact, export_model, export_source, read_card_metadata)
from zoodeploy.export.validate import compare_logits, failures
from zoodeploy.fileio import UMASK, sha256_file
from zoodeploy.preprocess import Preprocessing
from zoodeploy.runtime import EAGER, InputError, open_runner
from zoodeploy.recipes import CopyRecipe
from zoodeploy.card import CARD_LOCK

MODEL = "lenet5"  # trained on digits; exports in seconds


def logits(art, variant, x, batch):
    with open_runner(art, variant) as runner:
        return np.concatenate([runner.run(x[i:i + batch]) for i in range(0, len(x), batch)])


def leftovers(directory):
    """Temp files or staging directories an export might have left."""
    return sorted(p.name for p in directory.iterdir()
                  if p.name != CARD_LOCK and (p.name.startswith(".") or p.suffix == ".tmp"))


def test_dynamic_batch_matches_pytorch_at_1_7_and_32_on_held_out_data(trained):
    art = trained(MODEL)
    x, y = Artifact(art).test_data()
    for batch in (1, 7, 32):
        n = batch * 3  # several batches of each size; 7 and 32 were never validated at export
        got, want = logits(art, "fp32", x[:n], batch), logits(art, EAGER, x[:n], batch)
        c = compare_logits(got, want, batch)
        assert failures(c, Tolerance()) == [], c
    # the whole held-out split: the ONNX model classifies exactly as the PyTorch one
    onnx_acc = accuracy_of(logits(art, "fp32", x, 64), y)
    eager_acc = accuracy_of(logits(art, EAGER, x, 64), y)
    assert onnx_acc.top1 == eager_acc.top1 > 90.0


def test_fixed_batch_is_validated_at_its_batch_and_refuses_others(artifact):
    art = artifact(MODEL)
    v = export_artifact(art, ExportConfig(batch=4))
    assert v.recipe.batch == 4 and [c.batch for c in v.validation.comparisons] == [4]
    graph = onnx.load(str(art / FP32_FILE)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert read_card_metadata(art / FP32_FILE)["input_shape"] == [4, 3, 32, 32]
    x, _ = Artifact(art).test_data()
    with open_runner(art, "fp32") as runner:
        assert runner.run(x[:4]).shape == (4, 10)
        with pytest.raises(InputError, match="fixed batch of 4"):
            runner.run(x[:3])


def test_exported_program_is_saved_validated_and_runnable(artifact):
    art = artifact(MODEL)
    export_artifact(art, ExportConfig(format=ExportFormat.exported_program))
    card = load_card(art)
    program = card.variant(PROGRAM)
    assert (program.file, program.runtime, program.precision) == (PROGRAM_FILE, "torch-export", "fp32")
    assert [c.batch for c in program.validation.comparisons] == [1, 8]
    loaded = torch.export.load(str(art / PROGRAM_FILE))
    batch_dim = [n for n in loaded.graph.nodes if n.op == "placeholder"][-1].meta["val"].shape[0]
    assert not isinstance(batch_dim, int)  # dynamic batch, as in the ONNX file
    x, _ = Artifact(art).test_data()
    got, want = logits(art, PROGRAM, x[:10], 5), logits(art, EAGER, x[:10], 5)
    assert np.abs(got - want).max() <= 1e-5


def test_out_of_tolerance_export_is_an_error_that_keeps_the_valid_model(artifact):
    art = artifact(MODEL)
    before = sha256_file(art / FP32_FILE)
    strict = Tolerance(min_top1_agreement=101.0)  # no export can meet it: a deterministic failure
    with pytest.raises(ValidationError, match=r"failed validation.*max abs error [0-9.e+-]+"):
        export_artifact(art, ExportConfig(tolerance=strict))
    assert sha256_file(art / FP32_FILE) == before and leftovers(art) == []
    card = load_card(art)
    assert card.variants["fp32"].sha256 == before
    failure = card.provenance.export_failure
    assert [c.batch for c in failure.validation.comparisons] == [1, 8]
    export_artifact(art)  # a good export clears the failure record
    assert load_card(art).provenance.export_failure is None


class KthValueNet(nn.Module):
    """A tiny classifier using an operator the ONNX exporter has no translation for."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        z = self.conv(x).flatten(1)
        return torch.kthvalue(z, 2, dim=1, keepdim=True).values.expand(-1, 3)


class InferenceModeNet(nn.Module):
    """Traced outside inference mode, run inside it: the graph differs from eager execution."""

    def forward(self, x):
        z = x.mean(dim=(2, 3))
        return z * 2 if torch.is_inference_mode_enabled() else z


class DataDependentNet(nn.Module):
    """Python control flow on tensor values: torch.export cannot capture it."""

    def forward(self, x):
        z = x.mean(dim=(2, 3))
        return z if z.sum() > 0 else -z


class TwoOutputNet(nn.Module):
    def forward(self, x):
        z = x.mean(dim=(2, 3))
        return z, z


def tiny_card(name):
    return ModelCard(name=name, num_classes=3, labels=["a", "b", "c"],
                     preprocessing=Preprocessing(size=8, resize=8))


def test_unsupported_operator_is_named_with_the_model(tmp_path):
    samples = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ExportError, match=r"kthvaluenet: .*aten\.kthvalue"):
        export_model(KthValueNet(), tiny_card("kthvaluenet"), tmp_path / FP32_FILE, samples, ExportConfig())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model, needle", [(DataDependentNet(), "torch.export cannot capture the model"),
                                           (TwoOutputNet(), "the model returns 2 outputs")])
def test_model_that_cannot_be_captured_is_one_clear_error(tmp_path, capfd, model, needle):
    samples = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ExportError, match=f"tiny: {needle}"):
        export_model(model, tiny_card("tiny"), tmp_path / FP32_FILE, samples, ExportConfig())
    assert list(tmp_path.iterdir()) == []
    assert capfd.readouterr().err == ""  # torch's graph dumps do not reach the user's terminal


def test_graph_that_differs_from_pytorch_is_refused_with_the_measured_error(tmp_path):
    samples = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ValidationError, match=r"inferencenet fp32 ONNX export failed .*max abs error"):
        export_model(InferenceModeNet(), tiny_card("inferencenet"), tmp_path / FP32_FILE, samples,
                     ExportConfig(format=ExportFormat.exported_program))
    assert list(tmp_path.iterdir()) == []


def test_input_size_change_in_place_is_refused_when_other_variants_depend_on_it(artifact):
    art = artifact(MODEL)
    (art / "fused.onnx").write_bytes((art / FP32_FILE).read_bytes())
    handle = Artifact(art)
    handle.add_variant(handle.new_variant("fused", "fused.onnx", precision="fp32", runtime="onnxruntime",
                                          made_by="a copy, for this test", recipe=CopyRecipe(source=FP32_FILE)))
    with pytest.raises(ExportError, match=r"fused.*-o OUT"):
        export_artifact(art, ExportConfig(input_size=40))
    with pytest.raises(ExportError, match="at least 32px"):
        export_artifact(art, ExportConfig(input_size=16))


def test_artifact_exported_into_another_directory_leaves_the_source_alone(artifact, tmp_path):
    art = artifact(MODEL)
    before = (art / "card.json").read_bytes()
    out, v = export_source(art, tmp_path / "copy")
    assert out == tmp_path / "copy" and (art / "card.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.name != CARD_LOCK) == ["card.json", "checkpoint.pt", FP32_FILE]
    card = load_card(out)
    assert list(card.variants) == ["fp32"] and card.variants["fp32"].sha256 == v.sha256
    assert card.checkpoint_sha256 == load_card(art).checkpoint_sha256
    # readable by others, as any file the user writes (not the 0600 of a temp file)
    assert (out / FP32_FILE).stat().st_mode & 0o777 == 0o666 & ~UMASK
    with pytest.raises(ExportError, match="already holds an artifact"):
        export_source(art, out)
    assert leftovers(tmp_path) == []


def test_source_that_is_neither_artifact_nor_zoo_name(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean resnet18"):
        export_source("resnet1B", tmp_path / "out")
    with pytest.raises(ArtifactError, match="does not exist"):
        export_source(str(tmp_path / "nope"))
    with pytest.raises(ExportError, match="--weights / --labels / --preprocessing are for a new SOURCE"):
        export_source(tmp_path, weights="none")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, needle", [
    ({"batch": "x"}, "--batch"), ({"batch": 0}, "--batch"), ({"opset": 17}, "--opset 17"),
    ({"format": "tflite"}, "--format"), ({"input_size": 0}, "--input-size")])
def test_bad_config_is_one_clear_error(kwargs, needle):
    with pytest.raises(ExportError, match=needle):
        ExportConfig(**kwargs)
