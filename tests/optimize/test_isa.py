"""ISA detection from /proc/cpuinfo text, and the INT8 scheme picked for each kind of CPU."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from zoodeploy.optimize.isa import detect_isa, parse_cpuinfo, scheme_for
from zoodeploy.optimize.quantize import QuantConfig, Scheme

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
