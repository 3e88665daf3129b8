"""`zoodeploy compile` through a real subprocess: one line, exit 1, for whatever is wrong or missing."""

import importlib.util

import pytest
import torch
from cli_support import assert_one_line_error, run_cli

HAS_CUDA = torch.cuda.is_available()


@pytest.mark.skipif(HAS_CUDA, reason="checks the message on a machine without a GPU")
def test_without_a_gpu_compile_says_what_is_missing(zoo_artifact):
    art = zoo_artifact("lenet5")
    r = run_cli("compile", art, "--precision", "int8", "--max-batch", 8)
    assert_one_line_error(r, "an NVIDIA CUDA GPU is not available", "pip install 'zoodeploy[gpu]'")
    assert not list(art.glob("*.engine")) and not list(art.glob(".*.tmp"))


@pytest.mark.skipif(HAS_CUDA, reason="checks the message on a machine without a GPU")
def test_without_a_gpu_torch_tensorrt_says_so_before_anything_else(zoo_artifact):
    from zoodeploy.errors import MissingDependencyError
    from zoodeploy.optimize.compile import compile_variant
    from zoodeploy.optimize.tensorrt import CompileConfig
    with pytest.raises(MissingDependencyError, match="an NVIDIA CUDA GPU is not available"):
        compile_variant(zoo_artifact("lenet5"), CompileConfig(backend="torch-tensorrt", precision="fp16"))


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_with_a_gpu_but_without_tensorrt_compile_names_it(zoo_artifact):
    r = run_cli("compile", zoo_artifact("lenet5"), "--precision", "fp16")
    assert_one_line_error(r, "TensorRT is not available", "pip install 'zoodeploy[gpu]'")


def test_bad_options_are_one_line(tmp_path):
    # the other config errors are checked in-process (test_gpu_plan.py); one subprocess shows the path
    assert_one_line_error(run_cli("compile", tmp_path, "--max-batch", 0), "--max-batch must be at least 1")
