"""ISA detection from /proc/cpuinfo text, and the INT8 scheme picked for each kind of CPU."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from zoodeploy.errors import OptimizeError
from zoodeploy.optimize import OptimizeConfig
from zoodeploy.optimize.isa import scheme_for, scheme_for_target
from zoodeploy.optimize.quantize import SCHEMES, QuantConfig, Scheme
from zoodeploy.target import TargetIsa, detect_isa, parse_cpuinfo, resolve_target

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi1 bmi2 sha_ni
"""
ICELAKE = ZEN3.replace("AMD EPYC 7B13 64-Core Processor", "Intel Xeon Platinum 8375C").replace(
    "avx2", "avx2 avx512f avx512bw avx512_vnni")
ALDERLAKE = ZEN3.replace("avx2", "avx2 avx_vnni")
SKYLAKE_SP = ZEN3.replace("avx2", "avx2 avx512f avx512bw")  # AVX-512 without VNNI still saturates
GRAVITON2 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize("text, machine, scheme, summary", [
    (ZEN3, "x86_64", "u8s8-reduce-range", "AVX2 without VNNI"),
    (SKYLAKE_SP, "x86_64", "u8s8-reduce-range", "AVX-512 without VNNI"),
    (ICELAKE, "x86_64", "u8s8", "AVX-512 with VNNI"),
    (ALDERLAKE, "x86_64", "u8s8", "AVX2 with VNNI"),
    (GRAVITON2, "aarch64", "s8s8", "ARM with dot-product"),
])
def test_scheme_follows_the_isa(text, machine, scheme, summary):
    isa = parse_cpuinfo(text, machine)
    assert isa.summary == summary
    assert scheme_for(isa)[0] == scheme


def test_auto_scheme_resolves_by_isa_and_an_explicit_one_wins():
    isa = parse_cpuinfo(ZEN3, "x86_64")
    scheme, why = QuantConfig(isa=isa).resolved()
    assert scheme is Scheme.u8s8_reduce_range and "saturate" in why
    assert QuantConfig(scheme="u8u8", isa=isa).resolved() == (Scheme.u8u8, "set by --scheme")


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads Linux /proc/cpuinfo")
def test_detects_this_machine():
    isa = detect_isa()
    flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.lower().startswith(("flags", "features"))).split(":", 1)[1].split()
    assert isa.machine == platform.machine()
    assert isa.avx2 == ("avx2" in flags)
    assert isa.vnni == any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


# ---------------------------------------------------------------- the target ISA, not the build host's

HOSTS = {"avx2": parse_cpuinfo(ZEN3, "x86_64"), "vnni": parse_cpuinfo(ICELAKE, "x86_64"),
         "arm": parse_cpuinfo(GRAVITON2, "aarch64")}


@pytest.mark.parametrize("host", sorted(HOSTS))
@pytest.mark.parametrize("target, scheme", [("arm64", "s8s8"), ("x86-avx2", "u8s8-reduce-range"),
                                            ("x86-vnni", "u8s8")])
def test_a_named_target_gets_its_own_scheme_on_any_host(host, target, scheme):
    name, why = scheme_for_target(target, HOSTS[host])
    assert name == scheme and f"target {target}" in why


def test_arm64_target_is_s8s8_full_range_per_channel_from_an_avx2_host():
    """What the phone gets when an AVX2 machine builds it: no 7-bit weights, no U8 activations."""
    cfg = QuantConfig(isa=HOSTS["avx2"], target_isa="arm64")
    scheme, why = cfg.resolved()
    spec = SCHEMES[scheme]
    assert scheme is Scheme.s8s8 and "arm64" in why
    assert (spec.activation, spec.weight, spec.reduce_range, cfg.per_channel) == ("QInt8", "QInt8", False, True)


@pytest.mark.parametrize("host, scheme", [("avx2", "u8s8-reduce-range"), ("vnni", "u8s8"), ("arm", "s8s8")])
def test_host_target_follows_the_build_host(host, scheme):
    assert scheme_for_target(TargetIsa.host, HOSTS[host])[0] == scheme == scheme_for(HOSTS[host])[0]
    assert QuantConfig(isa=HOSTS[host]).resolved()[0].value == scheme


@pytest.mark.parametrize("host, named", [("avx2", "x86-avx2"), ("vnni", "x86-vnni"), ("arm", "arm64")])
def test_host_resolves_to_a_named_class_for_the_card(host, named):
    assert resolve_target("host", HOSTS[host]).value == named
    assert resolve_target("arm64", HOSTS[host]) is TargetIsa.arm64


def test_an_explicit_scheme_still_wins_over_the_target():
    assert QuantConfig(scheme="u8u8", target_isa="arm64").resolved() == (Scheme.u8u8, "set by --scheme")


@pytest.mark.parametrize("make", [lambda: QuantConfig(target_isa="riscv"),
                                  lambda: OptimizeConfig(target_isa="arm32")])
def test_unknown_target_isa_is_one_clear_error(make):
    with pytest.raises(OptimizeError, match="--target-isa .* use one of host, arm64, x86-avx2, x86-vnni"):
        make()


def test_optimize_config_passes_the_target_to_quantization():
    assert OptimizeConfig(target_isa="arm64").quant.target_isa is TargetIsa.arm64
