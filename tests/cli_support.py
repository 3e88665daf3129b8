"""The CLI as a user runs it, for every test directory: a real `python -m zoodeploy` subprocess,
and the check that a refusal is one line on stderr with exit 1."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args, env: dict[str, str] | None = None, cwd=None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`zoodeploy ARGS` as a real subprocess; `env` is merged over os.environ."""
    return subprocess.run([sys.executable, "-m", "zoodeploy", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})})


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """Exit `code` (the CLI's 1; a bundle's predict.py uses 3 for a missing runtime) and exactly one
    stderr line, no traceback, holding every needle; returns that line."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
