"""`zoodeploy export`: an artifact or zoo model to a validated, self-describing fp32.onnx."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zoodeploy.cli.common import (SOURCE_HELP, CalibDataOpt, EvalDataOpt, JsonFlag, LabelsOpt, NameOpt,
                                  PreprocessingOpt, console, print_json, say_skipped)
from zoodeploy.export.config import DEFAULT_OPSET, PROGRAM_FILE, ExportConfig, ExportFormat

if TYPE_CHECKING:
    from zoodeploy.card import Variant


SourceArg = Annotated[str, typer.Argument(help=f"Artifact directory, or {SOURCE_HELP}.")]
OutOpt = Annotated[Path | None, typer.Option(
    "-o", "--out", help="Artifact directory to write (default: SOURCE itself; artifacts/NAME for a new SOURCE).")]
InputSizeOpt = Annotated[int | None, typer.Option(help="Input height = width (default: the card's / model's).")]
WeightsOpt = Annotated[str | None, typer.Option(
    help="For a name: `imagenet` (default), a checkpoint path, or `none` (random init); for a callable: a "
         "state_dict / checkpoint for the module it returns (torch.load(weights_only=True)).")]
FormatOpt = Annotated[ExportFormat, typer.Option(
    "--format", help="`exported-program` also saves the torch.export program (fp32.pt2).")]


def export(
    source: SourceArg,
    out: OutOpt = None,
    opset: Annotated[int, typer.Option(help="ONNX opset, 18 to 23.")] = DEFAULT_OPSET,
    input_size: InputSizeOpt = None,
    batch: Annotated[str, typer.Option(help="`dynamic`, or a fixed batch size N.")] = "dynamic",
    weights: WeightsOpt = None,
    format: FormatOpt = ExportFormat.onnx,
    labels: LabelsOpt = None,
    preprocessing: PreprocessingOpt = None,
    calib_data: CalibDataOpt = None,
    eval_data: EvalDataOpt = None,
    name: NameOpt = None,
    json: JsonFlag = False,
) -> None:
    """Export to ONNX (torch.onnx dynamo exporter), check it and validate it against PyTorch."""
    from zoodeploy.export.source import export_source  # torch and onnx: once the options parsed
    from zoodeploy.models.sources import SourceConfig
    cfg = ExportConfig(opset=opset, batch=batch, input_size=input_size, format=format)
    src = SourceConfig(source, weights=weights, labels=labels, preprocessing=preprocessing, calib_data=calib_data,
                       eval_data=eval_data, name=name)
    artifact, variant = export_source(src, out, cfg, progress=True)
    if json:
        print_json({"artifact": str(artifact), **variant.model_dump(mode="json")})
        return
    say_skipped(artifact)
    if variant.validation is None:  # an ONNX source: its own file is the fp32 variant
        console.print(f"[green]made[/] {artifact} from {source}: {variant.file} (the ONNX model itself)", soft_wrap=True)
        return
    console.print(f"[green]exported[/] {source} -> {artifact / variant.file}: {summary(variant)}",
                  soft_wrap=True)
    if cfg.format is ExportFormat.exported_program:
        console.print(f"[green]saved[/] the torch.export program -> {artifact / PROGRAM_FILE} (validated too)",
                      soft_wrap=True)


def summary(variant: Variant) -> str:
    """One line of what was validated, with the worst figures over the batch sizes."""
    v = variant.validation
    comps = v.comparisons
    batch = variant.recipe.batch
    return (f"opset {variant.recipe.opset}, {'dynamic batch' if batch == 'dynamic' else f'fixed batch {batch}'}; "
            f"vs PyTorch at batch {', '.join(str(c.batch) for c in comps)} on {v.samples}: "
            f"max abs error {max(c.max_abs_err for c in comps):.2g}, "
            f"max relative error {max(c.max_rel_err for c in comps):.2g}, "
            f"top-1 agreement {min(c.top1_agreement for c in comps):.0f}%, "
            f"top-5 {min(c.top5_agreement for c in comps):.0f}%; "
            f"{variant.seconds or 0:.1f}s")
