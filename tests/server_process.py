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


class ChildServer:
    """A server in a child process of its own session: started, ready-checked by polling
    `ready_url` with a timeout, its log's tail in every error; a context manager. Subclasses say
    what to run (`_popen`), where readiness shows and how to stop it."""

    what = "server"
    poll_seconds = 0.5

    def __init__(self, log: str | Path, ready_timeout: float):
        self.log = Path(log)
        self.ready_timeout = ready_timeout
        self.log_at_ready = ""  # the server log when it first answered ready
        self._proc: subprocess.Popen | None = None
        self._children: set[int] = set()

    @property
    def ready_url(self) -> str:
        raise NotImplementedError

    def _popen(self) -> dict:
        """Popen's arguments: args, and cwd / env as the server needs."""
        raise NotImplementedError

    def start(self):
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(**self._popen(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
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
                raise ServerError(f"{self.what} exited with {self._proc.returncode}; see {self.log}:\n"
                                  + self.tail())
            try:
                if httpx.get(self.ready_url, timeout=10).status_code == 200:
                    self.log_at_ready = self.log.read_text(errors="replace")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(self.poll_seconds)
        raise ServerError(f"{self.what} not ready after {self.ready_timeout:.0f}s; see {self.log}:\n" + self.tail())

    def _remember_children(self) -> None:
        try:
            self._children |= {c.pid for c in psutil.Process(self._proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass

    def processes(self) -> list[psutil.Process]:
        """The server and every process it started that is alive now (workers, backend stubs)."""
        if self._proc is None:
            return []
        self._remember_children()
        return [p for p in map(_process, [self._proc.pid, *sorted(self._children)]) if p is not None]

    def usage(self) -> tuple[float, int]:
        """(CPU seconds, user + system, and resident bytes) of the server's processes together:
        what it costs, whichever of its processes does the work."""
        cpu, rss = 0.0, 0
        for p in self.processes():
            try:
                t = p.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return cpu, rss

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerProcess(ChildServer):
    """`bentoml serve TARGET` with ZOODEPLOY_* settings; a context manager that waits for /readyz."""

    what = "bentoml serve"

    def __init__(self, target: str = ".", *, cwd: str | Path, env: dict[str, str], log: str | Path,
                 port: int | None = None, args: dict[str, str] | None = None, ready_timeout: float = 240.0):
        super().__init__(log, ready_timeout)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bentoml = Path(sys.executable).with_name("bentoml")
        extra = [a for k, v in (args or {}).items() for a in ("--arg", f"{k}={v}")]
        self._cmd = [str(bentoml), "serve", target, "--host", "127.0.0.1", "--port", str(self.port), *extra]
        self._cwd, self._env = str(cwd), {**os.environ, **env}

    @property
    def ready_url(self) -> str:
        return self.url + "/readyz"

    def _popen(self) -> dict:
        return {"args": self._cmd, "cwd": self._cwd, "env": self._env}

    def worker_pids(self) -> list[int]:
        """The processes `bentoml serve` started (its workers), alive now."""
        self._remember_children()
        return [pid for pid in sorted(self._children) if psutil.pid_exists(pid)]

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
