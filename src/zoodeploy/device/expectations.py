"""A bundle's expected outputs as its target computes them: the staged bundle's sample images run
on the emulated device of the target ISA.

Packaging is handed `target_outputs` (`PackageConfig.on_device`; the CLI passes it) and records
what it returns in samples/expected.json `targets` and the manifest, each written once: this
module writes nothing of the bundle's. The device layer sits above package (it runs the bundles
package stages), so package never imports it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from zoodeploy.device import get_device
from zoodeploy.device.arm64 import DeviceError
from zoodeploy.device.evaluate import device_logits
from zoodeploy.errors import MissingDependencyError
from zoodeploy.package.bundle import TargetOutputs
from zoodeploy.preprocess import softmax


def target_outputs(bundle: Path, images: list[str], isa: str, make: bool = True) -> TargetOutputs | str:
    """`images` (relative to the runnable bundle folder `bundle`) run by the bundle's own predict.py
    on the emulated `isa` device. With `make` False, only a device already made on this machine is
    used (making one takes minutes). Returns why there are no outputs when there is no device here."""
    try:
        device = get_device(isa, make=make)
    except (MissingDependencyError, DeviceError) as e:  # not made: no target figures, never guessed ones
        return str(e)
    with device.workdir() as (host, guest):
        shutil.copytree(bundle, host / "bundle")
        logits = device_logits(device, f"{guest}/bundle", [f"{guest}/bundle/{f}" for f in images])
    return TargetOutputs(probabilities=softmax(logits), device=device.description,
                         runtime={"onnxruntime": device.info["runtime"]["onnxruntime"]})
