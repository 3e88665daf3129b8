"""Accuracy where the model will run: the held-out evaluation inside an emulated device.

Each variant is made into an edge bundle (`zoodeploy.package.bundle.stage`) and run by that
bundle's own `predict.py --json --logits` inside the device, on the held-out test images
written as lossless PNGs: the device decodes and preprocesses them with the bundle's copy of
preprocess.py, exactly as a deployed bundle would. zoodeploy itself never runs there. Drift
is against fp32 run the same way on the same device. No timing is taken: emulated time means
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoodeploy.card import Accuracy, ModelCard, load_card, update_card, variant_path
from zoodeploy.device.arm64 import Device, DeviceError, ensure_device
from zoodeploy.errors import ArtifactError
from zoodeploy.evaluate.accuracy import REFERENCE, accuracy_of

DEVICES = {"arm64": ensure_device}  # --on NAME -> how to get that device
IMAGES_PER_RUN = 1000  # predict.py arguments per run (~50 kB of argv; each run pays an emulated import)


def get_device(name: str, make: bool = True) -> Device:
    """Device `name`, made now if needed (with `make`; else only one already made here)."""
    try:
        ensure = DEVICES[name]
    except KeyError:
        raise ArtifactError(f"unknown device {name!r} for --on; use one of {', '.join(DEVICES)}") from None
    return ensure(make=make)


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


def write_test_images(card: ModelCard, folder: Path) -> tuple[list[str], np.ndarray]:
    """The test split as PNG files (lossless) in `folder`: their names and labels."""
    from zoodeploy.models.data import splits_for
    from zoodeploy.package.bundle import save_png
    if card.data is None:
        raise ArtifactError(f"{card.name}: the card records no data set, so there is no test split to run")
    test = splits_for(card.data).test
    folder.mkdir(parents=True)
    names = []
    for i in range(len(test.labels)):
        names.append(f"{i:05d}.png")
        save_png(test.image(i), folder / names[-1])
    return names, np.asarray(test.labels)


def stage_bundle(artifact: Path, card: ModelCard, name: str, root: Path) -> None:
    """Variant `name` as an extracted edge bundle in `root` (.ort variants as mobile bundles)."""
    from zoodeploy.package.bundle import PackageConfig, Target, stage
    variant = card.variants[name]
    source = variant_path(artifact, variant)
    target = Target.mobile if source.suffix == ".ort" else Target.cpu
    root.mkdir(parents=True)
    stage(artifact, card, variant, source, root, PackageConfig(variant=name, target=target, samples=1))


def device_logits(device: Device, bundle: str, images: list[str]) -> np.ndarray:
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


def evaluate_on(artifact: str | Path, on: str = "arm64", variants: list[str] | None = None,
                device: Device | None = None, record: bool = True,
                say: Callable[[str], None] = lambda line: None) -> dict[str, Accuracy]:
    """Top-1, top-5, drift and agreement (vs fp32 on the same device) of each variant, measured
    on device `on`; recorded in the card as `accuracy_on[on]` with `record`."""
    artifact = Path(artifact)
    card = load_card(artifact)
    names = bundle_variants(card, variants)
    device = device or get_device(on)
    logits: dict[str, np.ndarray] = {}
    with device.workdir() as (host, guest):
        files, labels = write_test_images(card, host / "images")
        images = [f"{guest}/images/{f}" for f in files]
        for name in names:
            say(f"{name}: bundle run on {device.description}, {len(images)} test images")
            stage_bundle(artifact, card, name, host / "bundles" / name)
            logits[name] = device_logits(device, f"{guest}/bundles/{name}", images)
    ref = logits[REFERENCE]
    figures = {n: accuracy_of(lg, labels, None if n == REFERENCE else ref, card.labels)
               for n, lg in logits.items()}
    figures[REFERENCE] = figures[REFERENCE].model_copy(update={"drop_pt": 0.0, "agreement": 100.0,
                                                               "max_abs_err": 0.0})
    if record:
        with update_card(artifact) as fresh:
            for n, acc in figures.items():
                fresh.variants[n].accuracy_on[on] = acc
    return figures


def target_figures(card: ModelCard, name: str) -> tuple[str, Accuracy] | None:
    """Variant `name`'s figures measured on the device of the card's target ISA (`evaluate --on`),
    with that ISA; None when it has none there."""
    isa = card.target_isa
    acc = card.variants[name].accuracy_on.get(isa) if isa else None
    return (isa, acc) if acc is not None else None


def target_accuracy(card: ModelCard, name: str) -> Accuracy | None:
    """What a gate or a selection should judge variant `name` by: its figures measured on the
    card's target ISA's device when there are any, else those measured on the build host."""
    found = target_figures(card, name)
    return found[1] if found else card.variants[name].accuracy
