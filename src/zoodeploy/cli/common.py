"""Options shared by several commands, declared once, and output helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zoodeploy.progress import console  # noqa: F401 - stderr, for people: the console the bars draw on

if TYPE_CHECKING:
    from zoodeploy.artifact import Artifact

JsonFlag = Annotated[bool, typer.Option("--json/--no-json", help="Print machine-readable JSON on stdout.")]
ForceFlag = Annotated[bool, typer.Option(
    "--force/--no-force", help="Write into a directory that already holds an artifact: what the old model left "
                               "(its card, variants, reports and latency baseline) is removed first.")]
# one spelling of the input size everywhere; --image-size is kept as an alias
InputSizeOpt = Annotated[int | None, typer.Option(
    "--input-size", "--image-size", min=1,
    help="Input height = width in pixels (default: for digits 32, 48 for SqueezeNet; else the model's own).")]
# the default accuracy budget of every command that selects or gates (optimize, build, check)
DEFAULT_MAX_DROP = 1.0
MaxDropOpt = Annotated[float, typer.Option(
    "--max-drop", min=0, help="Top-1 percentage points a variant may lose vs fp32 (agreement without labels).")]
ArtifactArg = Annotated[Path, typer.Argument(help="Artifact directory (holds card.json).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")]
# a model SOURCE (zoodeploy.models.sources) and what goes with it, for export, optimize and build
SOURCE_HELP = ("a zoo or torchvision model name, path/to/file.py:function or package.module:function "
               "returning an nn.Module (runs that code), a torch.export program (.pt2) or an .onnx classifier")
LabelsOpt = Annotated[str | None, typer.Option(
    "--labels", help="For a new SOURCE: `imagenet` (torchvision's 1,000 names), a file (one label a line, or a "
                     "JSON list), or `folders` (the --eval-data class folders in sorted order as outputs 0..N-1); "
                     "default: the model's own (zoodeploy metadata, or metadata_props labels / classes / names / "
                     "id2label / character). Class folders are matched to labels by name.")]
PreprocessingOpt = Annotated[str | None, typer.Option(
    "--preprocessing", help="For a new SOURCE, any of: size=H or size=HxW (crop=S: square), resize=N (shorter "
                            "side before the crop), mode=crop|squash|pad, pad=R,G,B, align=center|topleft, "
                            "interpolation=bilinear|bicubic|nearest|lanczos, channels=rgb|bgr|gray, scale=1|255, "
                            "mean=R,G,B, std=R,G,B (in the model's channel order), layout=nchw|nhwc, "
                            "dtype=float32|uint8; or a JSON file of them. Default: the model's own (its input's "
                            "channels, layout, dtype and size; its metadata or torchvision weights), else "
                            "ImageNet's.")]
NameOpt = Annotated[str | None, typer.Option(
    "--name", help="For a new SOURCE: the model's name in the card, the service and packages (default: the "
                   "source's own: the file or function name).")]
CalibDataOpt = Annotated[str | None, typer.Option(
    "--calib-data", help="Calibration images: any folder of images, read recursively as unlabelled images "
                         "whatever its sub-folders (or `digits`); alone, it is split so that calibration and "
                         "evaluation never share an image.")]
EvalDataOpt = Annotated[str | None, typer.Option(
    "--eval-data", help="Evaluation images: an ImageFolder when its top-level folders are the model's labels "
                        "(matched by name), else a folder of images without labels, nested or not (figures "
                        "become agreement with fp32).")]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def say_skipped(artifact: Artifact | Path) -> None:
    """One line when the card's data left unreadable images out (never silently)."""
    from zoodeploy.artifact import Artifact
    data = Artifact.of(artifact).card.data
    if data is not None and data.skipped:
        console.print(f"[yellow]note:[/] {data.skipped} of {data.num_files} image files in {data.source} are "
                      "unreadable and were skipped", soft_wrap=True)
