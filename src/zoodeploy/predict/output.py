"""Rows, shards and the output file of `predict`.

One row per input, the same columns in every format: `path`, then `label_1, prob_1, …,
label_k, prob_k` (best first), with `--logits` one `logit_<label>` column per class, and
`error` (empty for an image that was read; the reason, with every other column empty, for one
that was not).

How OUT is assembled: rows go into `OUT.parts/` beside OUT as shard files in OUT's own format
(`shard-00000.csv`, …, each written atomically, then a `shard-00000.done.json` marker with its
row and error counts), plus `manifest.json`, the fingerprint of the inputs and settings. When
every shard is done, OUT is written atomically from the shards in order (CSV / JSON Lines:
the shards' bytes under one header; Parquet: one row group per shard with pyarrow) and
`OUT.parts/` is removed. A killed run loses at most the shard in flight; `--resume` keeps the
shards whose marker is there, provided the manifest matches.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from zoodeploy.errors import ArtifactError, DataError, MissingDependencyError
from zoodeploy.fileio import atomic_path, write_bytes, write_json
from zoodeploy.preprocess import softmax

Block = dict[str, list[Any]]  # column name -> one value per row (str, float or None)
MANIFEST = "manifest.json"


class OutputFormat(str, Enum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"

    @classmethod
    def of(cls, out: Path) -> OutputFormat:
        """The format OUT's extension names; a one-line error for any other."""
        suffix = out.suffix.lower().lstrip(".")
        try:
            fmt = cls(suffix)
        except ValueError:
            raise DataError(f"{out}: unknown output extension {out.suffix or '(none)'!r}; "
                            "use .parquet, .csv or .jsonl") from None
        if fmt is cls.parquet:
            pyarrow()
        return fmt


def pyarrow():
    """pyarrow, or the extra that brings it (Parquet output needs it, CSV and JSON Lines do not)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingDependencyError("pyarrow (for .parquet output)", "pip install 'zoodeploy[parquet]' "
                                     "(or zoodeploy[ray]), or write .csv / .jsonl") from None
    return pa


@dataclass(frozen=True)
class Schema:
    """The columns of one predict run: top-k labels and probabilities, logits optional."""

    labels: tuple[str, ...]
    top_k: int
    logits: bool = False

    @property
    def k(self) -> int:
        return min(self.top_k, len(self.labels))

    @property
    def names(self) -> list[str]:
        top = [c for j in range(1, self.k + 1) for c in (f"label_{j}", f"prob_{j}")]
        return ["path", *top, *(f"logit_{lab}" for lab in self.labels if self.logits), "error"]

    def arrow(self):
        pa = pyarrow()
        return pa.schema([(n, pa.string() if n in ("path", "error") or n.startswith("label_") else pa.float64())
                          for n in self.names])

    def block(self, paths: Sequence[str], logits: np.ndarray, ok: Sequence[int],
              errors: Sequence[str | None]) -> Block:
        """Rows for `paths`: `logits` holds the rows of the paths at indices `ok`, in order."""
        n = len(paths)
        out: Block = {"path": list(paths)}
        cols: dict[str, list[Any]] = {c: [None] * n for c in self.names[1:-1]}
        if len(ok):
            probs = softmax(logits.astype(np.float32))
            top = np.argsort(-probs, axis=1, kind="stable")[:, :self.k]
            rows, names = np.arange(len(ok)), np.asarray(self.labels, dtype=object)
            values = {}
            for j in range(self.k):
                values[f"label_{j + 1}"] = names[top[:, j]].tolist()
                values[f"prob_{j + 1}"] = probs[rows, top[:, j]].tolist()
            if self.logits:
                for c, lab in enumerate(self.labels):
                    values[f"logit_{lab}"] = logits[:, c].astype(np.float64).tolist()
            for c, got in values.items():
                if len(ok) == n:  # every file was read: the column is the values
                    cols[c] = got
                else:
                    for i, v in zip(ok, got):
                        cols[c][i] = v
        out.update(cols)
        out["error"] = list(errors)
        return out


def concat(blocks: Sequence[Block]) -> Block:
    if len(blocks) == 1:
        return blocks[0]
    return {c: [v for b in blocks for v in b[c]] for c in blocks[0]}


def count_rows(block: Block) -> tuple[int, int]:
    """(rows, error rows)."""
    return len(block["path"]), sum(e is not None for e in block["error"])


# --- encoding -------------------------------------------------------------------------------------

def encode(block: Block, fmt: OutputFormat, schema: Schema) -> bytes:
    """A block as the bytes of a CSV body (no header), JSON Lines or a Parquet file."""
    if fmt is OutputFormat.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerows(zip(*(["" if v is None else v for v in block[c]] for c in schema.names)))
        return buf.getvalue().encode()
    if fmt is OutputFormat.jsonl:
        names = schema.names
        return "".join(json.dumps(dict(zip(names, row))) + "\n"
                       for row in zip(*(block[c] for c in names))).encode()
    import pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(to_arrow(block, schema), buf)
    return buf.getvalue()


def to_arrow(block: Block, schema: Schema):
    pa = pyarrow()
    return pa.table({c: block[c] for c in schema.names}, schema=schema.arrow())


def csv_header(schema: Schema) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(schema.names)
    return buf.getvalue().encode()


# --- shards ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardDone:
    rows: int
    errors: int


class ShardStore:
    """OUT.parts/: shard files with done markers, the run's manifest, and the final assembly."""

    def __init__(self, out: Path, fmt: OutputFormat, schema: Schema, shard_size: int):
        self.out, self.fmt, self.schema, self.shard_size = Path(out), fmt, schema, shard_size
        self.dir = self.out.with_name(self.out.name + ".parts")

    def shard_path(self, i: int) -> Path:
        return self.dir / f"shard-{i:05d}.{self.fmt.value}"

    def marker(self, i: int) -> Path:
        return self.dir / f"shard-{i:05d}.done.json"

    def num_shards(self, n: int) -> int:
        return -(-n // self.shard_size)

    def open(self, manifest: dict[str, Any], resume: bool) -> dict[int, ShardDone]:
        """Make OUT.parts/ for this run; with `resume`, the shards an earlier identical run finished."""
        if self.out.is_dir():
            raise ArtifactError(f"{self.out} is a directory; -o takes a file path ending in .parquet, .csv or .jsonl")
        done: dict[int, ShardDone] = {}
        if resume and (self.dir / MANIFEST).is_file():
            done = self._resumable(manifest)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArtifactError(f"cannot write {self.out}: {e.strerror or e}; choose a writable location") from None
        for stale in self.dir.glob(".*.tmp"):  # what a killed run was writing
            stale.unlink(missing_ok=True)
        write_json(self.dir / MANIFEST, manifest)
        return done

    def _resumable(self, manifest: dict[str, Any]) -> dict[int, ShardDone]:
        try:
            old = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            old = {}
        differs = sorted(k for k in manifest.keys() | old.keys() if old.get(k) != manifest.get(k))
        if differs:
            raise DataError(f"{self.dir} was written by a run with other inputs or settings (differs in: "
                            f"{', '.join(differs)}); rerun without --resume to start over")
        done = {}
        for i in range(self.num_shards(manifest["inputs"])):
            if self.marker(i).is_file() and self.shard_path(i).is_file():
                d = json.loads(self.marker(i).read_text())
                done[i] = ShardDone(d["rows"], d["errors"])
        return done

    def write(self, i: int, block: Block) -> ShardDone:
        """Shard `i` atomically, then its marker: a shard without a marker is redone on resume."""
        write_bytes(self.shard_path(i), encode(block, self.fmt, self.schema))
        rows, errors = count_rows(block)
        write_json(self.marker(i), {"rows": rows, "errors": errors})
        return ShardDone(rows, errors)

    def assemble(self, shards: int) -> Path:
        """OUT from shards 0..shards-1, atomically; then OUT.parts/ is removed."""
        with atomic_path(self.out) as tmp:
            if self.fmt is OutputFormat.parquet:
                self._assemble_parquet(tmp, shards)
            else:
                with open(tmp, "wb") as f:
                    if self.fmt is OutputFormat.csv:
                        f.write(csv_header(self.schema))
                    for i in range(shards):
                        with open(self.shard_path(i), "rb") as src:
                            shutil.copyfileobj(src, f)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.out

    def _assemble_parquet(self, tmp: Path, shards: int) -> None:
        import pyarrow.parquet as pq
        schema = self.schema.arrow()
        with pq.ParquetWriter(tmp, schema) as w:
            for i in range(shards):
                w.write_table(pq.read_table(self.shard_path(i), schema=schema))
            if shards == 0:
                w.write_table(schema.empty_table())
