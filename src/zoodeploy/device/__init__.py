"""Devices the model will run on, made on this machine: an emulated ARM64 Debian root (qemu-user).

`DEVICES` is the one registry of them, by ISA: `get_device("arm64")` makes one (once per machine)
and returns it. `evaluate_on(artifact, "arm64")` (device/evaluate.py) measures accuracy and drift
there through each variant's edge bundle; `target_outputs` (device/expectations.py) runs a staged
bundle's samples there for packaging, which records them: the device layer runs what package
stages, so it imports package and is handed to it (`PackageConfig.on_device`), never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable

from zoodeploy.device.arm64 import DeviceError, EmulatedDevice, ensure_device
from zoodeploy.registry import Registry

# ISA (zoodeploy.target.TargetIsa's names) -> how to get its device: (make: bool) -> EmulatedDevice
DEVICES: Registry[Callable[..., EmulatedDevice]] = Registry("device")
DEVICES.add("arm64", ensure_device)


def get_device(isa: str, make: bool = True) -> EmulatedDevice:
    """The device of `isa`, made now if needed (with `make`; else only one already made here)."""
    return DEVICES.get(isa)(make=make)


__all__ = ["DEVICES", "DeviceError", "EmulatedDevice", "ensure_device", "get_device"]
