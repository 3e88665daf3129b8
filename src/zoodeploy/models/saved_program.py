"""A saved torch.export program (.pt2), and torch's failures told in one line.

A .pt2 file is both a model SOURCE (models/sources.py) and what `export` writes beside the ONNX
file (export/onnx_export.py): both save and load it the same way, and both report a failure of
torch.export / torch.onnx by its root cause (`gist`) or the operator it names (`failed_op`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# how torch.onnx names the operator it could not translate, in its error text
_OP_PATTERNS = (re.compile(r"OpOverload\(op='([\w.:]+)', overload='(\w+)'\)"),
                re.compile(r"target=torch\.ops\.([\w.]+)"))


def save_program(program: torch.export.ExportedProgram, path: Path) -> None:
    # a file object: torch.export.save insists on a .pt2 name, and `path` is a temp file
    with open(path, "wb") as f:
        torch.export.save(program, f)


def load_program(path: Path) -> nn.Module:
    """A saved program, loaded back as a callable module (what the torch-export runtime runs)."""
    with open(path, "rb") as f:  # a file object, as for saving: `path` may be a temp name
        return torch.export.load(f).module()


def failed_op(e: BaseException) -> str | None:
    """The operator torch.onnx failed to translate, from its error text (None: not an operator)."""
    text = _ANSI.sub("", _chain_text(e))
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            op = ".".join(g for g in m.groups() if g).replace("::", ".")
            return op.removesuffix(".default")
    return None


def gist(e: BaseException) -> str:
    """The root cause of a torch.export / torch.onnx failure as one short line.

    Their messages open with generic advice and put the cause under "Exception summary".
    """
    text = _ANSI.sub("", str(e))
    summary = text.split("## Exception summary", 1)[-1]
    m = re.search(r"<class '(?:[\w.]+\.)?(\w+)'>: (.+)", summary)
    line = f"{m.group(1)}: {m.group(2)}" if m else next(
        (ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    line = " ".join(line.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _chain_text(e: BaseException) -> str:
    parts, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        parts.append(str(e))
        e = e.__cause__ or e.__context__
    return "\n".join(parts)
