"""Devices the model will run on, made on this machine: an emulated ARM64 Debian root (qemu-user).

`ensure_device()` makes (once per machine) and returns the device; `evaluate_on(artifact, "arm64")`
measures accuracy and drift there through each variant's edge bundle; a bundle for a device's ISA
carries the sample outputs computed there (device/expectations.py, named in packaging's
`TARGET_DEVICES`).
"""

from zoodeploy.device.arm64 import Device, DeviceError, ensure_device

__all__ = ["Device", "DeviceError", "ensure_device"]
