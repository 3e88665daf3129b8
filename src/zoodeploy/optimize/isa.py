"""Which INT8 kernels this CPU has, and the quantization scheme that holds accuracy on them.

ONNX Runtime's x86 INT8 kernels multiply uint8 activations by int8 weights. Without VNNI
(AVX2 / AVX-512F only) they use `vpmaddubsw`, which adds two u8*s8 products into a *saturating*
int16: full-range 8-bit weights overflow it and the model loses accuracy (measured here with
MobileNetV2 on digits: 97.2% -> 95.0% with S8S8, 94.2% with U8S8, 97.0% with U8S8 +
reduce_range). 7-bit weights (`reduce_range`) cannot overflow. VNNI (`vpdpbusd`) accumulates
in int32, so full-range weights are safe there. ARM's dot-product kernels favour S8S8.

The model is quantized for the CPU it will *run* on, which need not be the one that builds it:
`scheme_for_target(TargetIsa.arm64)` gives a phone S8S8 with full-range weights even when an
AVX2 host (which would pick 7-bit reduce-range weights for itself) does the build.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from zoodeploy.errors import OptimizeError

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
AMX_FLAGS = ("amx_bf16", "amx_int8")


@dataclass(frozen=True)
class Isa:
    """The CPU features that decide the INT8 scheme."""

    machine: str  # x86_64 | aarch64 | ...
    model: str
    avx2: bool = False
    avx512: bool = False
    vnni: bool = False
    arm_dot: bool = False  # ARMv8.2 sdot/udot
    bf16: bool = False  # AVX512_BF16 (or AMX-BF16): bf16 inference is fast, not emulated
    amx: bool = False  # AMX tiles (amx_bf16 / amx_int8)

    @property
    def summary(self) -> str:
        if self.machine in ("x86_64", "AMD64", "i686"):
            simd = "AVX-512" if self.avx512 else "AVX2" if self.avx2 else "SSE"
            more = "".join(f", {name}" for name, has in (("BF16", self.bf16), ("AMX", self.amx)) if has)
            return f"{simd} {'with' if self.vnni else 'without'} VNNI{more}"
        if self.machine in ("aarch64", "arm64"):
            return f"ARM {'with' if self.arm_dot else 'without'} dot-product"
        return self.machine or "unknown CPU"

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary}


def parse_cpuinfo(text: str, machine: str) -> Isa:
    """An Isa from the text of /proc/cpuinfo (x86 `flags`, ARM `Features`)."""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
    return Isa(machine=machine, model=model, avx2="avx2" in flags,
               avx512=any(f.startswith("avx512f") for f in flags),
               vnni=any(f in flags for f in VNNI_FLAGS),
               arm_dot="asimddp" in flags,
               bf16="avx512_bf16" in flags or "amx_bf16" in flags,
               amx=any(f in flags for f in AMX_FLAGS))


def detect_isa() -> Isa:
    """This machine's Isa (from /proc/cpuinfo where there is one)."""
    machine = platform.machine()
    try:
        return parse_cpuinfo(CPUINFO.read_text(errors="replace"), machine)
    except OSError:  # not Linux: macOS on Apple silicon has dot-product, others are unknown
        return Isa(machine=machine, model=platform.processor(), arm_dot=machine == "arm64")


def scheme_for(isa: Isa) -> tuple[str, str]:
    """The scheme name that holds accuracy on `isa`, and why (one line for the card)."""
    if isa.machine in ("aarch64", "arm64"):
        return "s8s8", f"{isa.summary}: ARM INT8 kernels take signed activations and weights"
    if isa.vnni:
        return "u8s8", f"{isa.summary}: VNNI accumulates u8*s8 in int32, full-range weights are safe"
    return ("u8s8-reduce-range",
            f"{isa.summary}: u8*s8 pairs saturate int16 (vpmaddubsw); 7-bit weights cannot overflow")


class TargetIsa(str, Enum):
    """The CPU class an INT8 model is quantized for; `host` is the one doing the build."""

    host = "host"
    arm64 = "arm64"  # AArch64 phones, boards, Apple silicon: S8S8 kernels (sdot / smmla)
    x86_avx2 = "x86-avx2"  # AVX2 or AVX-512F without VNNI: saturating u8*s8 pairs
    x86_vnni = "x86-vnni"  # AVX-VNNI / AVX512-VNNI / AMX: u8*s8 accumulated in int32


# one representative Isa per named target: what scheme_for needs to know about it
TARGET_ISAS: dict[TargetIsa, Isa] = {
    TargetIsa.arm64: Isa(machine="aarch64", model="any ARMv8.2+ (target)", arm_dot=True),
    TargetIsa.x86_avx2: Isa(machine="x86_64", model="any x86-64 with AVX2, no VNNI (target)", avx2=True),
    TargetIsa.x86_vnni: Isa(machine="x86_64", model="any x86-64 with VNNI (target)", avx2=True, vnni=True),
}


def target_isa(value: TargetIsa | str) -> TargetIsa:
    """`value` as a TargetIsa, with a one-line error naming the choices."""
    try:
        return TargetIsa(value)
    except ValueError:
        raise OptimizeError(f"unknown --target-isa {value!r}; use one of "
                            f"{', '.join(t.value for t in TargetIsa)}") from None


def resolve_target(target: TargetIsa | str, host: Isa | None = None) -> TargetIsa:
    """The named target `target` stands for: `host` becomes this machine's class."""
    target = target_isa(target)
    if target is not TargetIsa.host:
        return target
    host = host or detect_isa()
    if host.machine in ("aarch64", "arm64"):
        return TargetIsa.arm64
    return TargetIsa.x86_vnni if host.vnni else TargetIsa.x86_avx2


def scheme_for_target(target: TargetIsa | str, host: Isa | None = None) -> tuple[str, str]:
    """The scheme for the CPU the model will run on (`host`: the one building it), and why."""
    target = target_isa(target)
    if target is TargetIsa.host:
        name, why = scheme_for(host or detect_isa())
        return name, f"target host ({why})"
    name, why = scheme_for(TARGET_ISAS[target])
    return name, f"target {target.value} ({why.split(': ', 1)[-1]})"
