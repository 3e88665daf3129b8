"""Options shared by several commands, declared once, and output helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)  # progress and tables for people
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ArtifactArg = Annotated[Path, typer.Argument(help="Artifact directory (holds card.json).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()
