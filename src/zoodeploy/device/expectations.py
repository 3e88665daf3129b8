"""A bundle's expected outputs as its target computes them: the staged bundle run on the emulated
device of the target ISA, its sample outputs recorded in samples/expected.json (`targets`).

Packaging (zoodeploy.package.bundle) stages the bundle and calls this step by the name its
`TARGET_DEVICES` registry gives, imported when needed: the device layer sits above package (it
runs the bundles package stages), and package never imports it at load time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from zoodeploy.device.arm64 import DeviceError
from zoodeploy.device.evaluate import device_logits, get_device
from zoodeploy.errors import MissingDependencyError
from zoodeploy.fileio import sha256_file, write_json
from zoodeploy.package import predict
from zoodeploy.preprocess import softmax

# on-target expected outputs vs a device of the same ISA, per probability: the integer math of
# INT8 kernels is exact, what differs between ARM kernel variants and ORT releases is rounding
TARGET_PROB_ATOL = {"fp32": 1e-4, "fp16": 2e-3, "bf16": 2e-3, "int8": 5e-3, "mixed": 5e-3}


def add_target_expectations(root: Path, target_isa: str, precision: str, make: bool = True) -> str | None:
    """Run the staged bundle in `root` on the emulated `target_isa` device and record its outputs
    on the samples as that ISA's expectations (samples/expected.json `targets`), refreshing the
    manifest. With `make` False, only a device already made on this machine is used (making one
    takes minutes). Returns a note when there is no device: then nothing is recorded."""
    try:
        device = get_device(target_isa, make=make)
    except (MissingDependencyError, DeviceError) as e:  # not made: no target figures, never guessed ones
        return f"samples/expected.json holds the build host's outputs only, no {target_isa} ones: {e}"
    expected = json.loads((root / predict.EXPECTED).read_text())
    with device.workdir() as (host, guest):
        shutil.copytree(root, host / "bundle")
        logits = device_logits(device, f"{guest}/bundle", [f"{guest}/bundle/{s['file']}" for s in expected["samples"]])
    probs = softmax(logits)
    host_probs = [s["probabilities"] for s in expected["samples"]]
    expected.setdefault("targets", {})[target_isa] = {
        "top1": [int(p.argmax()) for p in probs], "probabilities": [[float(v) for v in p] for p in probs],
        "prob_atol": TARGET_PROB_ATOL.get(precision, 5e-3),
        "computed_with": {"device": device.description, "onnxruntime": device.info["runtime"]["onnxruntime"],
                          "max_abs_diff_vs_build_host": float(np.abs(probs - np.asarray(host_probs)).max())}}
    write_json(root / predict.EXPECTED, expected)
    manifest = json.loads((root / predict.MANIFEST).read_text())
    manifest["files"][predict.EXPECTED] = {"sha256": sha256_file(root / predict.EXPECTED),
                                           "bytes": (root / predict.EXPECTED).stat().st_size}
    manifest["samples"]["targets"] = {target_isa: expected["targets"][target_isa]["computed_with"]}
    write_json(root / predict.MANIFEST, manifest)
    return None
