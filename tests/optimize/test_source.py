"""A lone .onnx file: optimized into a new artifact directory, with or without zoodeploy metadata;
bad files and missing calibration data are clear errors."""

from __future__ import annotations

import shutil

import onnx
import pytest

from zoodeploy.card import load_card
from zoodeploy.errors import ArtifactError, DataError, OptimizeError
from zoodeploy.optimize import OptimizeConfig, optimize

FAST = dict(calib_size=16, max_drop=None, bench=False, threads=1)


def _lone_onnx(trained, tmp_path, keep_metadata: bool):
    path = tmp_path / "digits_net.onnx"
    if keep_metadata:
        shutil.copyfile(trained("lenet5") / "fp32.onnx", path)
    else:
        model = onnx.load(str(trained("lenet5") / "fp32.onnx"))
        del model.metadata_props[:]
        onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("keep_metadata", [False, True], ids=["bare", "with-metadata"])
def test_lone_onnx_with_calibration_data_becomes_an_artifact(trained, tmp_path, keep_metadata):
    path = _lone_onnx(trained, tmp_path, keep_metadata)
    variants = {v.name: v for v in optimize(path, OptimizeConfig(calib_data="digits", **FAST))}
    artifact = tmp_path / "digits_net-artifact"
    card = load_card(artifact)
    assert set(card.variants) == {"fp32", "fused", "int8"} and set(variants) == {"fused", "int8"}
    assert card.name == ("lenet5" if keep_metadata else "digits_net")
    assert card.provenance.card_from == ("onnx metadata" if keep_metadata else "graph + data")
    # the same digits test split and preprocessing the model was trained with: same accuracy
    trained_top1 = load_card(trained("lenet5")).training.test_accuracy
    assert variants["fused"].accuracy.top1 == pytest.approx(trained_top1, abs=1e-6)
    assert variants["int8"].accuracy.drop_pt is not None
    again = optimize(path, OptimizeConfig(passes=("fuse",), calib_data="digits", **FAST))
    assert [v.name for v in again] == ["fused"]  # the artifact made before is reused


def test_lone_onnx_without_calibration_data_says_what_to_pass(trained, tmp_path):
    path = _lone_onnx(trained, tmp_path, keep_metadata=False)
    with pytest.raises(OptimizeError, match="--calib-data"):
        optimize(path, OptimizeConfig(**FAST))


def test_non_onnx_file_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ArtifactError, match="ONNX"):
        optimize(path, OptimizeConfig(calib_data="digits", **FAST))


def test_calibration_directory_with_no_images_is_refused(trained, tmp_path):
    path = _lone_onnx(trained, tmp_path, keep_metadata=False)
    (tmp_path / "calib" / "a").mkdir(parents=True)
    (tmp_path / "calib" / "b").mkdir()
    with pytest.raises(DataError, match="no images"):
        optimize(path, OptimizeConfig(calib_data=str(tmp_path / "calib"), **FAST))


def test_missing_target_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        optimize(tmp_path / "nope", OptimizeConfig(**FAST))
