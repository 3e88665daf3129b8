"""The OpenVINO passes: what they record, bf16 only where the CPU has it, the build's pass list."""

from __future__ import annotations

import shutil

import pytest

from cli_support import invoke_cli
from zoodeploy.card import Precision, Runtime, load_card, save_card
from zoodeploy.target import Isa, detect_isa, parse_cpuinfo
from zoodeploy.optimize.openvino import has_bf16, unavailable
from zoodeploy.recipes import OpenVinoRecipe

pytest.importorskip("openvino")

AVX2 = Isa(machine="x86_64", model="test", avx2=True)
SAPPHIRE_RAPIDS = Isa(machine="x86_64", model="test", avx2=True, avx512=True, vnni=True, bf16=True, amx=True)


def test_cpuinfo_flags_give_bf16_and_amx():
    isa = parse_cpuinfo("flags\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile\n", "x86_64")
    assert isa.bf16 and isa.amx and isa.summary == "AVX-512 with VNNI, BF16, AMX"
    plain = parse_cpuinfo("flags\t: avx2 fma\n", "x86_64")
    assert not plain.bf16 and not plain.amx and plain.summary == "AVX2 without VNNI"


def test_build_may_run_the_openvino_passes_and_bf16_only_where_the_cpu_has_it():
    from zoodeploy.build import TARGET_EXTRA_PASSES
    from zoodeploy.optimize.passes import PASSES
    from zoodeploy.target import Target
    why_not_here = lambda name: PASSES.get(name).why_not_here()  # noqa: E731 - the pass record says
    assert TARGET_EXTRA_PASSES[Target.cpu] == ("ov-fused", "ov-int8", "bf16", "int8-bf16", "mixed-bf16")
    assert [unavailable(p, AVX2) for p in ("ov-fp32", "ov-fused", "ov-int8")] == [None] * 3
    for bf16 in ("bf16", "int8-bf16", "mixed-bf16"):  # int8 files whose float parts run at bf16 too
        assert "AVX2 without VNNI: no AVX512_BF16 or AMX" in unavailable(bf16, AVX2)
        assert unavailable(bf16, SAPPHIRE_RAPIDS) is None
    assert why_not_here("ov-int8") is None and why_not_here("fuse") is None  # fuse's module has no such hook
    assert (why_not_here("bf16") is None) is has_bf16(detect_isa())


def test_ov_fused_records_the_fused_file_as_an_openvino_row(optimized, tmp_path):
    from zoodeploy.optimize import OptimizeConfig, optimize
    art = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art)
    (made,) = optimize(art, OptimizeConfig(passes=("ov-fused",), max_drop=None, bench=False, threads=1))
    card = load_card(art)
    fused = card.variants["fused"]
    assert made.name == "fused-ov" and made.runtime is Runtime.openvino and made.precision is Precision.fp32
    assert (made.file, made.sha256) == (fused.file, fused.sha256)
    assert isinstance(made.recipe, OpenVinoRecipe) and made.recipe.source == "fused"
    assert made.recipe.inference_precision == "f32" and made.recipe.num_streams == 1
    assert made.validation.tolerance.atol < 1e-3 and made.validation.worst_abs_err < 1e-3
    assert made.accuracy is not None and made.accuracy.agreement == 100.0  # the orchestrator evaluated it


@pytest.mark.skipif(has_bf16(detect_isa()), reason="this CPU has BF16: the refusal is for CPUs without it")
def test_bf16_on_a_cpu_without_it_is_a_one_line_error(trained, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(trained("lenet5"), art)
    r = invoke_cli("optimize", art, "--passes", "bf16")
    # the orchestrator's progress line ("checking bf16 on OpenVINO ...") comes first; the error is one line
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "bf16 needs a CPU with AVX512_BF16 or AMX" in last and "fused-ov" in last, r.stderr
    assert "bf16" not in load_card(art).variants


# --- int8 on OpenVINO: judged against fp32, bounded against ONNX Runtime's run of the same file ---

def _zero_a_layer(src, dst, frac: float = 0.5) -> str:
    """A planted fault: one convolution's weight scale set to 0 (the layer's output is lost)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    m = onnx.load(str(src))
    inits = {i.name: i for i in m.graph.initializer}
    weights = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
               and len(inits[n.input[0]].dims) == 4]
    node = weights[int(len(weights) * frac)]
    scale = numpy_helper.to_array(inits[node.input[1]])
    inits[node.input[1]].CopyFrom(numpy_helper.from_array(np.zeros_like(scale), node.input[1]))
    onnx.save(m, str(dst))
    return node.name


def _int8_copy(optimized, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art)
    return art


def test_int8_on_openvino_is_judged_against_fp32_and_bounded_against_the_same_file(optimized, tmp_path):
    from zoodeploy.optimize import OptimizeConfig, optimize
    art = _int8_copy(optimized, tmp_path)
    (made,) = optimize(art, OptimizeConfig(passes=("ov-int8",), max_drop=0.5, bench=False, threads=1))
    v = made.validation
    assert made.name == "int8-ov" and v.reference == "fp32.onnx on ONNX Runtime", v
    assert "val split" in v.samples and v.comparisons[0].samples > 100  # the whole val split, not 64 images
    assert any("drop vs fp32" in c and "within the 0.5 pt budget" in c for c in v.checks), v.checks
    assert any("cross-runtime bound" in c and "int8.onnx on ONNX Runtime" in c for c in v.checks), v.checks


def test_the_cross_runtime_bound_passes_two_int8_kernels_and_fails_a_fault(optimized, tmp_path):
    """OpenVINO's and ONNX Runtime's int8 kernels on one file pass; images read transposed (a wrong
    layout) and a lost layer (measured: relative error 1.3-2.8, vs 0.09 between the kernels) fail."""
    import numpy as np
    from zoodeploy.artifact import Artifact
    from zoodeploy.export.validate import ToleranceError, compare, validation_samples
    from zoodeploy.optimize.openvino import CROSS_RUNTIME_INT8
    from zoodeploy.runtime import RunOptions
    from zoodeploy.runtime.openvino import OpenVinoRunner
    from zoodeploy.runtime.ort import OrtRunner
    art = Artifact.of(optimized("lenet5"))
    path, x = art.file(art.card.variants["int8"]), validation_samples(art, 64).x
    lost = tmp_path / "lost.onnx"
    _zero_a_layer(path, lost)
    judge = lambda cand, ref, xs=x: compare(cand, ref, xs, "int8-ov", tol=CROSS_RUNTIME_INT8)  # noqa: E731
    o = RunOptions(threads=1)
    with OpenVinoRunner(path, "ov", o) as ov, OpenVinoRunner(lost, "lost", o) as ov_lost, \
            OrtRunner(path, "int8", o) as ort:
        judge(ov, ort)
        transposed = type("T", (), {"run": lambda self, b: ov.run(np.ascontiguousarray(b.swapaxes(2, 3)))})()
        for fault in (transposed, ov_lost):
            with pytest.raises(ToleranceError, match="rtol 0.5"):
                judge(fault, ort)


def test_int8_on_openvino_over_the_fp32_budget_is_not_made(optimized, tmp_path):
    """A fault both runtimes share (the int8 file itself lost a layer, re-hashed into the card) passes
    the same-file bound; the fp32 budget refuses it."""
    from zoodeploy.errors import OptimizeError
    from zoodeploy.fileio import sha256_file
    from zoodeploy.optimize import OptimizeConfig, optimize
    art = _int8_copy(optimized, tmp_path)
    _zero_a_layer(art / "int8.onnx", art / "int8.onnx", frac=0.0)
    card = load_card(art)
    card.variants["int8"].sha256 = sha256_file(art / "int8.onnx")
    save_card(art, card)
    with pytest.raises(OptimizeError, match=r"drop vs fp32 .* over the 0.5 pt budget"):
        optimize(art, OptimizeConfig(passes=("ov-int8",), max_drop=0.5, bench=False, threads=1))
    assert "int8-ov" not in load_card(art).variants


def test_a_failing_pass_does_not_take_the_others_down(optimized, tmp_path):
    """int8.onnx altered after it was recorded: ov-int8 fails its integrity check, fuse is made;
    exit 0 with one `not made` line; exit 1 only when nothing asked for was made."""
    art = _int8_copy(optimized, tmp_path)
    (art / "fused.onnx").unlink()
    card = load_card(art)
    del card.variants["fused"]
    save_card(art, card)
    with open(art / "int8.onnx", "ab") as f:
        f.write(b"\0")
    r = invoke_cli("optimize", art, "--passes", "fuse,ov-int8", "--no-bench", "--max-drop", "none",
                   "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "fused" in load_card(art).variants and "int8-ov" not in load_card(art).variants
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("not made:")]
    assert len(lines) == 1 and "ov-int8" in lines[0] and "int8.onnx" in lines[0], r.stderr
    r = invoke_cli("optimize", art, "--passes", "ov-int8", "--no-bench", "--threads", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "int8.onnx" in r.stderr.strip().splitlines()[-1]
