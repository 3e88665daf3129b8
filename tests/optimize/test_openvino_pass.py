"""The OpenVINO passes: what they record, bf16 only where the CPU has it, the build's pass list."""

from __future__ import annotations

import shutil

import pytest

from cli_support import invoke_cli
from zoodeploy.card import Precision, Runtime, load_card
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
    assert TARGET_EXTRA_PASSES[Target.cpu] == ("ov-fused", "ov-int8", "bf16")
    assert [unavailable(p, AVX2) for p in ("ov-fp32", "ov-fused", "ov-int8")] == [None] * 3
    assert "AVX2 without VNNI: no AVX512_BF16 or AMX" in unavailable("bf16", AVX2)
    assert unavailable("bf16", SAPPHIRE_RAPIDS) is None
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
