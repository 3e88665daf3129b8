"""The mobile target's files: an ORT-format model, its required-operators config, its usability report.

A variant made by `zoodeploy optimize --ort-format` (int8-ort) records both beside its .ort
file and in the card; for an .onnx variant they are made here by the same functions
(zoodeploy.optimize.ort_format, over onnxruntime.tools).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoodeploy.artifact import Artifact
from zoodeploy.card import Variant
from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import sha256_file
from zoodeploy.recipes import OrtFormatRecipe

MODEL = "model.ort"
CONFIG = "mobile/required_operators.config"
REPORT = "mobile/usability_report.txt"


@dataclass(frozen=True)
class MobileFiles:
    origin: str  # one line: where the three files came from
    ort_made_from: str | None  # the .onnx converted here, or None when the variant was .ort
    usability: dict[str, Any]  # per execution provider: suitability, partitions, unsupported ops


def place_mobile(art: Artifact, variant: Variant, model: Path, root: Path, target_isa: str) -> MobileFiles:
    """Write model.ort, the operators config and the usability report into bundle folder `root`;
    an .onnx variant is converted with the fixed optimizations of `target_isa`'s platform
    (`zoodeploy.target.target_isa_for`: arm64 for mobile unless told otherwise)."""
    from zoodeploy.optimize.ort_format import convert, mobile_usability, target_platform
    (root / "mobile").mkdir(parents=True, exist_ok=True)
    if model.suffix == ".ort":
        shutil.copyfile(model, root / MODEL)
        return _from_ort_variant(art, variant, root)
    with tempfile.TemporaryDirectory(prefix="zoodeploy-package-ort-") as tmp:
        platform = target_platform(target_isa)
        ort_file, config = convert(model, Path(tmp), platform)
        shutil.copyfile(ort_file, root / MODEL)
        _copy_config(config, root / CONFIG)
    report = mobile_usability(model)
    write_report(report, model.name, root / REPORT)
    return MobileFiles(origin=f"converted from {model.name} here by zoodeploy.optimize.ort_format "
                              f"(onnxruntime.tools convert_onnx_models_to_ort for target platform "
                              f"{platform or 'default'}, usability checker)",
                       ort_made_from=model.name, usability=report["eps"])


def _from_ort_variant(art: Artifact, variant: Variant, root: Path) -> MobileFiles:
    """An int8-ort variant: its recorded config (hash-checked) and report, made only if missing."""
    artifact, card, made = art.path, art.card, []
    recipe = variant.recipe if isinstance(variant.recipe, OrtFormatRecipe) else None
    config = recipe.required_operators_config if recipe else None
    if config and (artifact / config).is_file():
        want = recipe.required_operators_config_sha256
        if want and sha256_file(artifact / config) != want:
            raise ArtifactError(f"{artifact / config} does not match the sha256 recorded for variant "
                                f"{variant.name!r}; re-make it with `zoodeploy optimize --ort-format`")
        _copy_config(artifact / config, root / CONFIG)
    else:
        write_operators_config(root / MODEL, root / CONFIG)
        made.append("operators config")
    report = recipe.mobile_usability.model_dump(mode="json") if recipe and recipe.mobile_usability else None
    source = recipe.source if recipe else None
    if report:
        write_report(report, f"{source or variant.name} (recorded by `{variant.made_by}`)", root / REPORT)
    elif source in card.variants:
        from zoodeploy.optimize.ort_format import mobile_usability
        onnx_path = art.file(card.variants[source])
        report = mobile_usability(onnx_path)
        write_report(report, onnx_path.name, root / REPORT)
        made.append(f"usability report (from {onnx_path.name})")
    else:
        raise ArtifactError(f"variant {variant.name!r} records no mobile usability report and no source "
                            "variant to make one from; re-make it with `zoodeploy optimize --ort-format`")
    origin = f"{variant.file} and its files as recorded by `{variant.made_by}`"
    return MobileFiles(origin=origin + (f"; made here: {', '.join(made)}" if made else ""),
                       ort_made_from=None, usability=report["eps"])


def write_operators_config(ort_model: Path, out: Path) -> None:
    """The required_operators.config (for --include_ops_by_config) of an .ort file that came without one."""
    from onnxruntime.tools.ort_format_model import create_config_from_models
    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)  # it logs each file at INFO
    with tempfile.TemporaryDirectory() as tmp:
        made = Path(tmp) / "model.config"
        create_config_from_models([ort_model], made, enable_type_reduction=False)
        _copy_config(made, out)


def _copy_config(made: Path, out: Path) -> None:
    """Copy a config, naming the bundle's model where the tool recorded the path it read."""
    lines = made.read_text().splitlines()
    out.write_text("\n".join(f"# - {MODEL}" if ln.startswith("# - ") else ln for ln in lines) + "\n")


def write_report(report: dict[str, Any], of: str, out: Path) -> None:
    """The usability check as text: a verdict per execution provider, then the checker's own log."""
    lines = [f"# ONNX Runtime mobile usability check (onnxruntime.tools.mobile_helpers) of {of}"]
    for ep, e in report["eps"].items():
        fixed = e.get("with_fixed_shapes")
        lines.append(f"# {ep}: {e['suitability']} as is ({e['supported_nodes']}/{e['nodes']} nodes in "
                     f"{e['partitions']} partitions)" + (f"; {fixed['suitability']} with a fixed batch size "
                                                          f"({fixed['supported_nodes']}/{fixed['nodes']} nodes)"
                                                          if fixed else ""))
    out.write_text("\n".join(lines + [""] + list(report.get("log", []))) + "\n")
