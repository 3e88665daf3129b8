"""The CLI as a user runs it, for every test directory, two ways with the same result type:

- `run_cli`: a real `python -m zoodeploy` subprocess. Each one imports torch (about 5 s of CPU),
  so it is for the few smoke tests that show the installed command works end to end.
- `invoke_cli`: the same command in this process (Typer's CliRunner isolation around
  `zoodeploy.cli.app.run`, which is what `main` runs, error handling included). For error paths
  and option parsing: the same one-line message and exit code, without starting Python.

`assert_one_line_error` checks a refusal from either.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from typer.testing import CliRunner

from zoodeploy.cli.app import run


def run_cli(*args, env: dict[str, str] | None = None, cwd=None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`zoodeploy ARGS` as a real subprocess; `env` is merged over os.environ."""
    return subprocess.run([sys.executable, "-m", "zoodeploy", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})})


def invoke_cli(*args, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    """`zoodeploy ARGS` in this process, as `main` runs it: stdout, stderr and the exit code.

    `env` is set over os.environ for the call and `cwd` entered for it (both restored after).
    An exception that `main` would not turn into one line propagates: the test fails on it.
    """
    argv = [str(a) for a in args]
    with CliRunner().isolation(env=env) as (out, err, _), (contextlib.chdir(cwd) if cwd else contextlib.nullcontext()):
        try:
            run(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        else:  # run() always exits; reaching here is a bug in it
            raise AssertionError(f"zoodeploy {' '.join(argv)} returned without exiting")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(["zoodeploy", *argv], code, stdout, stderr)


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """Exit `code` (the CLI's 1; a bundle's predict.py uses 3 for a missing runtime) and exactly one
    stderr line, no traceback, holding every needle; returns that line."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
