"""Helpers the predict tests import: how many images the fixtures write, and reading any output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

N_IMAGES = 40


def read_rows(path: Path) -> list[dict]:
    """The rows of a predict output in any format, with the same Python types (CSV's "" is None)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    number = lambda k: k.startswith(("prob_", "logit_"))  # noqa: E731
    return [{k: (None if v == "" else float(v) if number(k) else v) for k, v in r.items()} for r in rows]
