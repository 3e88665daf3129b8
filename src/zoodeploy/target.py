"""Where a model runs, in one vocabulary: what it is built and packaged for, the device its runner
uses, and the CPU it is quantized for.

    Target      cpu | mobile | gpu: what a build or a package is made for (`--target`)
    Device      cpu | cuda: what a runner runs on (`RunOptions.device`); `Target.gpu.device` is cuda
    Isa         what a CPU can do (from /proc/cpuinfo): the INT8 kernels it has, its model name
    TargetIsa   host | arm64 | x86-avx2 | x86-vnni: the CPU class an INT8 model is quantized for

`target_isa_for(target)` is the one rule "mobile means arm64 unless told otherwise";
`needs_gpu(variant)` says which variants run only on an NVIDIA GPU. The quantization scheme each
CPU class wants is policy of `zoodeploy.optimize.isa`.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from zoodeploy.errors import OptimizeError

if TYPE_CHECKING:
    from zoodeploy.card import Variant


class Device(StrEnum):
    """What a runner runs on."""

    cpu = "cpu"
    cuda = "cuda"  # an NVIDIA GPU


class Target(StrEnum):
    """What a build or a package is made for; decides the passes a build tries and the files a package holds."""

    cpu = "cpu"  # any CPU: ONNX Runtime (or OpenVINO) models; Triton / KServe KIND_CPU instances
    mobile = "mobile"  # phones and boards: ORT-format models for ORT Mobile / minimal builds
    gpu = "gpu"  # an NVIDIA GPU: fp16 and TensorRT engines; Triton / KServe KIND_GPU, one nvidia.com/gpu

    @property
    def device(self) -> Device:
        return Device.cuda if self is Target.gpu else Device.cpu


GPU_RUNTIMES = frozenset({"tensorrt", "torch-tensorrt"})  # engines that only run on an NVIDIA GPU


def needs_gpu(variant: Variant) -> bool:
    """Whether the variant can only run on an NVIDIA GPU (TensorRT engines); ONNX runs anywhere."""
    return variant.runtime in GPU_RUNTIMES


# --- the CPU ------------------------------------------------------------------------------------

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
AMX_FLAGS = ("amx_bf16", "amx_int8")
# the flags a CPU figure depends on, recorded beside benchmark results (`cpu_flags`)
FIGURE_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
ARM_MACHINES = ("aarch64", "arm64")  # platform.machine() on Linux, on macOS
X86_MACHINES = ("x86_64", "AMD64", "i686")


@dataclass(frozen=True)
class Isa:
    """The CPU features that decide the INT8 scheme, and the CPU's model name."""

    machine: str  # x86_64 | aarch64 | ...
    model: str
    avx2: bool = False
    avx512: bool = False
    vnni: bool = False
    arm_dot: bool = False  # ARMv8.2 sdot/udot
    bf16: bool = False  # AVX512_BF16 (or AMX-BF16): bf16 inference is fast, not emulated
    amx: bool = False  # AMX tiles (amx_bf16 / amx_int8)

    @property
    def is_arm(self) -> bool:
        return self.machine in ARM_MACHINES

    @property
    def summary(self) -> str:
        if self.machine in X86_MACHINES:
            simd = "AVX-512" if self.avx512 else "AVX2" if self.avx2 else "SSE"
            more = "".join(f", {name}" for name, has in (("BF16", self.bf16), ("AMX", self.amx)) if has)
            return f"{simd} {'with' if self.vnni else 'without'} VNNI{more}"
        if self.is_arm:
            return f"ARM {'with' if self.arm_dot else 'without'} dot-product"
        return self.machine or "unknown CPU"

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary}


def parse_cpuinfo(text: str, machine: str) -> Isa:
    """An Isa from the text of /proc/cpuinfo (x86 `flags`, ARM `Features`; the model name)."""
    flags = _flags(text)
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
    return Isa(machine=machine, model=model, avx2="avx2" in flags,
               avx512=any(f.startswith("avx512f") for f in flags),
               vnni=any(f in flags for f in VNNI_FLAGS),
               arm_dot="asimddp" in flags,
               bf16="avx512_bf16" in flags or "amx_bf16" in flags,
               amx=any(f in flags for f in AMX_FLAGS))


def _flags(text: str) -> set[str]:
    """The first CPU's flags in /proc/cpuinfo text (x86 `flags`, ARM `Features`)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def cpu_flags(names: tuple[str, ...] = FIGURE_FLAGS) -> dict[str, bool]:
    """Which of `names` this CPU lists (all False where /proc/cpuinfo is absent): the Isa folds them
    into classes, a benchmark records them as they are, so a figure says exactly what ran it."""
    try:
        have = _flags(CPUINFO.read_text(errors="replace"))
    except OSError:
        have = set()
    return {n: n in have for n in names}


def detect_isa() -> Isa:
    """This machine's Isa (from /proc/cpuinfo where there is one)."""
    machine = platform.machine()
    try:
        return parse_cpuinfo(CPUINFO.read_text(errors="replace"), machine)
    except OSError:  # not Linux: macOS on Apple silicon has dot-product, others are unknown
        return Isa(machine=machine, model=platform.processor(), arm_dot=machine == "arm64")


def cpu_model() -> str:
    """This CPU's model name, as a person would recognise it (platform's guess where cpuinfo has none)."""
    return detect_isa().model or platform.processor() or platform.machine()


# --- the CPU a model is made for --------------------------------------------------------------

class TargetIsa(str, Enum):
    """The CPU class an INT8 model is quantized for; `host` is the one doing the build."""

    host = "host"
    arm64 = "arm64"  # AArch64 phones, boards, Apple silicon: S8S8 kernels (sdot / smmla)
    x86_avx2 = "x86-avx2"  # AVX2 or AVX-512F without VNNI: saturating u8*s8 pairs
    x86_vnni = "x86-vnni"  # AVX-VNNI / AVX512-VNNI / AMX: u8*s8 accumulated in int32


# one representative Isa per named target: what the scheme policy needs to know about it
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


def target_isa_for(target: Target | str, told: TargetIsa | str | None = None) -> TargetIsa:
    """The CPU class a model for `target` is made for: the one `told`, else arm64 for mobile
    (phones and boards), else the build host."""
    if told:
        return target_isa(told)
    return TargetIsa.arm64 if Target(target) is Target.mobile else TargetIsa.host


def resolve_target(target: TargetIsa | str, host: Isa | None = None) -> TargetIsa:
    """The named target `target` stands for: `host` becomes this machine's class."""
    target = target_isa(target)
    if target is not TargetIsa.host:
        return target
    host = host or detect_isa()
    if host.is_arm:
        return TargetIsa.arm64
    return TargetIsa.x86_vnni if host.vnni else TargetIsa.x86_avx2


__all__ = ["GPU_RUNTIMES", "TARGET_ISAS", "Device", "Isa", "Target", "TargetIsa", "cpu_flags", "cpu_model", "detect_isa",
           "needs_gpu", "parse_cpuinfo", "resolve_target", "target_isa", "target_isa_for"]
