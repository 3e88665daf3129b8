"""The quantization scheme that holds accuracy on a CPU's INT8 kernels (the CPU itself, and the
class a model is made for, are `zoodeploy.target`'s: `Isa`, `detect_isa`, `TargetIsa`).

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

from zoodeploy.target import TARGET_ISAS, Isa, TargetIsa, detect_isa, target_isa


def scheme_for(isa: Isa) -> tuple[str, str]:
    """The scheme name that holds accuracy on `isa`, and why (one line for the card)."""
    if isa.is_arm:
        return "s8s8", f"{isa.summary}: ARM INT8 kernels take signed activations and weights"
    if isa.vnni:
        return "u8s8", f"{isa.summary}: VNNI accumulates u8*s8 in int32, full-range weights are safe"
    return ("u8s8-reduce-range",
            f"{isa.summary}: u8*s8 pairs saturate int16 (vpmaddubsw); 7-bit weights cannot overflow")


def scheme_for_target(target: TargetIsa | str, host: Isa | None = None) -> tuple[str, str]:
    """The scheme for the CPU the model will run on (`host`: the one building it), and why."""
    target = target_isa(target)
    if target is TargetIsa.host:
        name, why = scheme_for(host or detect_isa())
        return name, f"target host ({why})"
    name, why = scheme_for(TARGET_ISAS[target])
    return name, f"target {target.value} ({why.split(': ', 1)[-1]})"
