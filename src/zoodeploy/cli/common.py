"""Options shared by several commands, declared once, and output helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from zoodeploy.artifact import Artifact

console = Console(stderr=True)  # progress and tables for people
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ArtifactArg = Annotated[Path, typer.Argument(help="Artifact directory (holds card.json).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")]
# a model SOURCE (zoodeploy.models.sources) and what goes with it, for export, optimize and build
SOURCE_HELP = ("a zoo or torchvision model name, path/to/file.py:function or package.module:function "
               "returning an nn.Module (runs that code), a torch.export program (.pt2) or an .onnx classifier")
LabelsOpt = Annotated[str | None, typer.Option(
    "--labels", help="For a new SOURCE: `imagenet` (torchvision's 1,000 names), or a file (one label a line, or a "
                     "JSON list); default: the model's own, else the data's class folders, else class_<i>.")]
PreprocessingOpt = Annotated[str | None, typer.Option(
    "--preprocessing", help="For a new SOURCE: resize=256,crop=224,interpolation=bilinear,mean=R,G,B,std=R,G,B "
                            "(any of them) or a JSON file; default: the torchvision weights', else ImageNet's.")]
CalibDataOpt = Annotated[str | None, typer.Option(
    "--calib-data", help="Calibration images: any folder of images (recursive, no classes needed), an ImageFolder "
                         "or `digits`; alone, it is split so that calibration and evaluation never share an image.")]
EvalDataOpt = Annotated[str | None, typer.Option(
    "--eval-data", help="Evaluation images: an ImageFolder whose class folders are matched to the model's labels "
                        "by name, or a folder of images without labels (figures become agreement with fp32).")]


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
