"""Accuracy where the model will run: the held-out evaluation inside an emulated device.

Each variant is made into an edge bundle (`zoodeploy.package.bundle.stage`) and run by that
bundle's own `predict.py --json --logits` inside the device, on the held-out test images
written as lossless PNGs: the device decodes and preprocesses them with the bundle's copy of
preprocess.py, exactly as a deployed bundle would. zoodeploy itself never runs there. Drift
is against fp32 run the same way on the same device. No timing is taken: emulated time means
nothing. What a gate or a selection makes of these figures is `zoodeploy.artifact.target_accuracy`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoodeploy.artifact import REFERENCE, Artifact
from zoodeploy.card import Accuracy, ModelCard
from zoodeploy.device import get_device
from zoodeploy.device.arm64 import DeviceError, EmulatedDevice
from zoodeploy.errors import ArtifactError
from zoodeploy.evaluate.accuracy import accuracy_of
from zoodeploy.target import Target

IMAGES_PER_RUN = 1000  # predict.py arguments per run (~50 kB of argv; each run pays an emulated import)


def bundle_variants(card: ModelCard, names: list[str] | None) -> list[str]:
    """The variants to run (fp32 first, as the reference); only ONNX Runtime models make bundles."""
    runnable = [n for n, v in card.variants.items() if v.runtime == "onnxruntime"]
    wanted = names or runnable
    bad = [n for n in wanted if n not in runnable]
    if bad:
        raise ArtifactError(f"{card.name}: cannot run {', '.join(bad)} on a device: edge bundles carry ONNX "
                            f"Runtime variants ({', '.join(runnable) or 'none'})")
    card.variant(REFERENCE)
    return [REFERENCE] + [n for n in wanted if n != REFERENCE]


def write_test_images(art: Artifact, folder: Path) -> tuple[list[str], np.ndarray]:
    """The test split as PNG files (lossless) in `folder`: their names and labels."""
    from zoodeploy.package.bundle import save_png
    if art.card.data is None:
        raise ArtifactError(f"{art.card.name}: the card records no data set, so there is no test split to run")
    test = art.splits().test
    folder.mkdir(parents=True)
    names = []
    for i in range(len(test.labels)):
        names.append(f"{i:05d}.png")
        save_png(test.image(i), folder / names[-1])
    return names, np.asarray(test.labels)


def stage_bundle(art: Artifact, name: str, root: Path) -> None:
    """Variant `name` as an extracted edge bundle in `root` (.ort variants as mobile bundles)."""
    from zoodeploy.package.bundle import PackageConfig, stage
    variant = art.card.variants[name]
    target = Target.mobile if Path(variant.file).suffix == ".ort" else Target.cpu
    root.mkdir(parents=True)
    stage(art, variant, root, PackageConfig(variant=name, target=target, samples=1))


def device_logits(device: EmulatedDevice, bundle: str, images: list[str]) -> np.ndarray:
    """Logits of `images` (guest paths) from the bundle's predict.py inside the device."""
    out = []
    for i in range(0, len(images), IMAGES_PER_RUN):
        r = device.run(["python3", f"{bundle}/predict.py", "--json", "--logits", "--top-k", "1",
                        *images[i:i + IMAGES_PER_RUN]])
        try:
            out += [row["logits"] for row in json.loads(r.stdout)]
        except (ValueError, KeyError, TypeError):
            raise DeviceError(f"{bundle}/predict.py printed no logits on the {device.name} device: "
                              f"{r.stdout.strip()[:200]!r}") from None
    return np.asarray(out, np.float32)


def evaluate_on(artifact: Artifact | str | Path, on: str = "arm64", variants: list[str] | None = None,
                device: EmulatedDevice | None = None, record: bool = True,
                say: Callable[[str], None] = lambda line: None) -> dict[str, Accuracy]:
    """Top-1, top-5, drift and agreement (vs fp32 on the same device) of each variant, measured
    on device `on` (`zoodeploy.device.DEVICES`); recorded in the card as `accuracy_on[on]` with `record`."""
    art = Artifact.of(artifact)
    card = art.card
    names = bundle_variants(card, variants)
    device = device or get_device(on)
    logits: dict[str, np.ndarray] = {}
    with device.workdir() as (host, guest):
        files, labels = write_test_images(art, host / "images")
        images = [f"{guest}/images/{f}" for f in files]
        for name in names:
            say(f"{name}: bundle run on {device.description}, {len(images)} test images")
            stage_bundle(art, name, host / "bundles" / name)
            logits[name] = device_logits(device, f"{guest}/bundles/{name}", images)
    ref = logits[REFERENCE]
    figures = {n: accuracy_of(lg, labels, None if n == REFERENCE else ref, card.labels)
               for n, lg in logits.items()}
    figures[REFERENCE] = figures[REFERENCE].model_copy(update={"drop_pt": 0.0, "agreement": 100.0,
                                                               "max_abs_err": 0.0})
    if record:
        with art.update() as fresh:
            for n, acc in figures.items():
                fresh.variants[n].accuracy_on[on] = acc
    return figures
