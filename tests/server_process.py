"""A real `bentoml serve` in a child process: started on a free port, ready-checked, stopped by pid.

For tests and benchmarks (benchmarks/serve_overhead.py puts tests/ on sys.path), which must talk
to the server exactly as clients do; not part of the installed package. BentoML's
workers run in sessions of their own, so stopping signals the arbiter and then every worker
it started, by process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from zoodeploy.errors import ZoodeployError

READY_LINE = "serving "  # what a worker logs once the variant is loaded and warmed up


class ServerError(ZoodeployError):
    """The server did not start or answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


class ServerProcess:
    """`bentoml serve TARGET` with ZOODEPLOY_* settings; a context manager that waits for /readyz."""

    def __init__(self, target: str = ".", *, cwd: str | Path, env: dict[str, str], log: str | Path,
                 port: int | None = None, args: dict[str, str] | None = None, ready_timeout: float = 240.0):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        self.ready_timeout = ready_timeout
        self.log_at_ready = ""  # the server log when /readyz first answered 200
        bentoml = Path(sys.executable).with_name("bentoml")
        extra = [a for k, v in (args or {}).items() for a in ("--arg", f"{k}={v}")]
        self._cmd = [str(bentoml), "serve", target, "--host", "127.0.0.1", "--port", str(self.port), *extra]
        self._cwd, self._env = str(cwd), {**os.environ, **env}
        self._proc: subprocess.Popen | None = None
        self._children: set[int] = set()

    def start(self) -> ServerProcess:
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(self._cmd, cwd=self._cwd, env=self._env, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        import httpx
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            self._remember_children()
            if self._proc.poll() is not None:
                raise ServerError(f"bentoml serve exited with {self._proc.returncode}; see {self.log}:\n"
                                  + self.tail())
            try:
                if httpx.get(self.url + "/readyz", timeout=10).status_code == 200:
                    self.log_at_ready = self.log.read_text(errors="replace")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise ServerError(f"{self.url} not ready after {self.ready_timeout:.0f}s; see {self.log}:\n" + self.tail())

    def _remember_children(self) -> None:
        try:
            self._children |= {c.pid for c in psutil.Process(self._proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass

    def worker_pids(self) -> list[int]:
        """The processes `bentoml serve` started (its workers), alive now."""
        self._remember_children()
        return [pid for pid in sorted(self._children) if psutil.pid_exists(pid)]

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the arbiter and, shortly after, to each worker it started; SIGKILL after `grace`."""
        if self._proc is None:
            return
        self._remember_children()
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        # every worker is signalled directly too: BentoML 1.4's arbiter has been seen to leave a
        # worker running (with a dependency service still starting when /readyz was polled)
        workers = [p for p in map(_process, self._children) if p is not None]
        _, alive = psutil.wait_procs(workers, timeout=2)
        for p in alive:
            _signal(p, signal.SIGTERM)
        _, alive = psutil.wait_procs(alive, timeout=grace)
        for p in alive:
            _signal(p, signal.SIGKILL)
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._children.clear()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
