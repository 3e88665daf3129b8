"""`int8-ort`: a variant in ONNX Runtime's ORT format for mobile-class targets.

`convert_onnx_models_to_ort` writes the .ort file and the `required_operators.config` an ONNX
Runtime minimal build is compiled from; `check_onnx_model_mobile_usability`'s checker says
how much of the model the NNAPI (Android) and CoreML (iOS) execution providers can take.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import onnxruntime as ort

from zoodeploy.artifact import Artifact
from zoodeploy.card import Variant
from zoodeploy.errors import OptimizeError, first_line
from zoodeploy.fileio import atomic_path, sha256_file, staging_dir
from zoodeploy.optimize.passes import PASSES, PassContext
from zoodeploy.optimize.record import record_model
from zoodeploy.recipes import OrtFormatRecipe

COREML_CONFIGS = {"CoreML NeuralNetwork": "coreml_supported_neuralnetwork_ops.md",
                  "CoreML MLProgram": "coreml_supported_mlprogram_ops.md"}


# card.target_isa -> convert_onnx_models_to_ort's target_platform. `arm` keeps QDQ nodes in int8
# (session.qdqisint8allowed=1), which ARM's S8S8 kernels take; without it the fixed optimizations
# rewrite S8 QDQ pairs to U8 for x86 (QDQS8ToU8Transformer) and bake that into the .ort file.
TARGET_PLATFORMS = {"arm64": "arm"}


def target_platform(target_isa: str | None) -> str | None:
    """The converter's target_platform for a card's target ISA (None: the converter's default)."""
    return TARGET_PLATFORMS.get(target_isa or "")


def convert(src: Path, workdir: Path, platform: str | None = None) -> tuple[Path, Path]:
    """`src` (.onnx) -> (.ort file, required_operators.config) inside `workdir`, optimized for
    `platform` (`arm`, `amd64`, or None for the converter's default)."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort
    model = workdir / src.name
    shutil.copyfile(src, model)
    out = workdir / "out"
    log = io.StringIO()
    config_logger = logging.getLogger("ort_format_model.utils")  # logs each config it writes at INFO
    level = config_logger.level
    config_logger.setLevel(logging.WARNING)
    try:  # the converter prints its progress; stdout is for --json output
        with contextlib.redirect_stdout(log):
            convert_onnx_models_to_ort(model, output_dir=out, optimization_styles=[OptimizationStyle.Fixed],
                                       target_platform=platform)
    except Exception as e:
        raise OptimizeError(f"ORT format conversion of {src.name} failed: {first_line(e)}") from None
    finally:
        config_logger.setLevel(level)
    ort_file, config = out / f"{src.stem}.ort", out / f"{src.stem}.required_operators.config"
    if not ort_file.is_file() or not config.is_file():
        raise OptimizeError(f"ORT format conversion of {src.name} produced no .ort file: "
                            f"{log.getvalue().strip().splitlines()[-1:] or 'no output'}")
    return ort_file, config


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _partitions(info) -> dict[str, Any]:
    return {"suitability": info.suitability().name, "partitions": info.num_partitions,
            "supported_nodes": info.num_supported_nodes, "nodes": info.num_nodes,
            "largest_partitions": sorted((len(g) for g in info.supported_groups), reverse=True)[:5],
            "unsupported_ops": sorted(info.unsupported_ops),
            "unsupported_due_to_dynamic_shape": info.nodes_unsupported_due_to_dynamic_input}


def mobile_usability(model_path: Path) -> dict[str, Any]:
    """NNAPI / CoreML partitioning of the model, as check_onnx_model_mobile_usability reports it."""
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model
    lines = _Lines()
    logger = logging.getLogger("zoodeploy.mobile_usability")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(lines)
    checks = {"NNAPI": uc.check_nnapi_partitions,
              **{ep: (lambda m, fixed, f=f: uc.check_coreml_partitions(m, fixed, f)) for ep, f in COREML_CONFIGS.items()}}
    try:
        with staging_dir("zoodeploy-mobile") as tmp:
            optimized = Path(tmp) / model_path.name  # BASIC level, as the ORT format conversion does
            optimize_model(model_path, optimized, use_external_initializers=True)
            model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
            dynamic_inputs, _ = uc.check_shapes(model.graph, logger)
            report: dict[str, Any] = {"dynamic_inputs": [i.name for i in dynamic_inputs], "eps": {}}
            for ep, check in checks.items():
                info = check(model, True)
                info.print_analysis(logger, ep)
                entry = _partitions(info)
                if dynamic_inputs and entry["suitability"] != "YES":  # what fixing the batch size would give
                    entry["with_fixed_shapes"] = _partitions(check(model, False))
                report["eps"][ep] = entry
    except Exception as e:
        raise OptimizeError(f"mobile usability check of {model_path.name} failed: {first_line(e)}") from None
    finally:
        logger.removeHandler(lines)
    report["log"] = lines.lines
    return report


def to_ort_format(artifact: Artifact | str | Path, source: str = "int8") -> Variant:
    """Convert variant `source` to ORT format as variant `{source}-ort`, keeping the minimal-build
    operator config beside it and the mobile usability report in the card.

    The converter writes into a staging folder inside the artifact directory, so its files are
    renamed into place, not copied: each is written once."""
    art = Artifact.of(artifact)
    card = art.card
    src = art.file(source)
    if src.suffix != ".onnx":
        raise OptimizeError(f"variant {source!r} is {src.name}, not an ONNX model; convert an ONNX variant")
    platform = target_platform(card.target_isa)
    with staging_dir(".zoodeploy-ort", parent=art.path) as tmp:
        ort_file, config = convert(src, Path(tmp), platform)
        config_name = f"{src.stem}.required_operators.config"
        with atomic_path(art.path / config_name) as dst:
            os.replace(config, dst)
        report = mobile_usability(src)
        return record_model(
            art, f"{source}-ort", lambda out: os.replace(ort_file, out), file=f"{src.stem}.ort",
            precision=card.variant(source).precision,
            made_by=f"onnxruntime.tools.convert_onnx_models_to_ort (fixed optimizations, level all "
                    f"without NCHWc, target platform {platform or 'default'}) of {src.name}",
            recipe=OrtFormatRecipe(source=source, target_platform=platform, required_operators_config=config_name,
                                   required_operators_config_sha256=sha256_file(art.path / config_name),
                                   required_operators=_ops(art.path / config_name), mobile_usability=report,
                                   onnxruntime=ort.__version__))


def _ops(config: Path) -> list[str]:
    """The operator lines of a required_operators.config (domain;opset;op,op,...)."""
    return [ln.strip() for ln in config.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """The `ort-format` pass: its source variant (int8) in ORT format."""
    return to_ort_format(artifact, PASSES.get(name).source)
