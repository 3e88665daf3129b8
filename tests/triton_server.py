"""A real Triton Inference Server for tests: NVIDIA's `tritonserver` from the PyTriton wheel.

Not part of the installed package. `triton_install()` builds, once per machine, an environment of
its own under ~/.cache/zoodeploy/triton (ZOODEPLOY_TRITON_HOME overrides): `nvidia-pytriton`
(PYTRITON, from PyPI; it carries `tritonserver` 2.51 with the Python backend), numpy < 2,
ONNX Runtime (this environment's version, so logits agree bit for bit) and Pillow. Where that cannot
be done (no network, no shared libpython) it raises TritonUnavailable with the reason, which the
fixtures turn into a pytest skip.

`TritonServer(repository)` starts the binary bound to 127.0.0.1 on free ports, waits (with a
timeout) until every model is ready, and stops it by process id. The backend directory it hands
the server holds the Python backend and tests/triton_backend/ (a TEST-ONLY stand-in for Triton's
onnxruntime backend, which no registry here ships; see its model.py).

The traps this handles: the Python backend's stub ignores PYTHONPATH and takes the first `python3`
on PATH as its environment (so that environment's bin/ goes first on PATH); it needs that Python's
libpython and the wheel's `nvidia_pytriton.libs` on LD_LIBRARY_PATH; with numpy 2 in the stub's
environment every output tensor comes back empty (so numpy < 2); a stub that cannot start leaves
a model "loading" for ever (so every start has a timeout).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from server_process import ChildServer, ServerError, free_port

PYTRITON = "nvidia-pytriton==0.7.0"
STAND_INS = Path(__file__).with_name("triton_backend")  # <backend name>/model.py, test-only
INSTALL_TIMEOUT = 900.0
EXIT_TIMEOUT = 3  # seconds Triton waits on stop for in-flight work (30 by default; an idle client's open
                  # connection has been seen to hold it that long)
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


class TritonUnavailable(Exception):
    """The Triton server cannot be installed or run on this machine (the reason is the message)."""


@dataclass(frozen=True)
class TritonInstall:
    env: Path  # the stub's own virtual environment (numpy < 2, onnxruntime, pillow, the wheel)

    @property
    def site(self) -> Path:
        return self.env / "lib" / f"python{PY}" / "site-packages"

    @property
    def home(self) -> Path:  # pytriton/tritonserver: bin/, backends/python/, python_backend_stubs/
        return self.site / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "tritonserver"

    def environ(self) -> dict[str, str]:
        libs = [sysconfig.get_config_var("LIBDIR"), str(self.site / "nvidia_pytriton.libs")]
        old = os.environ.get("LD_LIBRARY_PATH")
        return {**os.environ, "PATH": f"{self.env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                "LD_LIBRARY_PATH": os.pathsep.join([*libs, *([old] if old else [])]),
                "PYTHONNOUSERSITE": "1"}

    def backends(self, into: Path) -> Path:
        """A backend directory: the wheel's Python backend with the stub for this Python, and the stand-ins."""
        python = into / "python"
        python.mkdir(parents=True)
        # copies, not links: Triton refuses a backend library whose real path leaves the backend directory
        for f in (self.home / "backends" / "python").iterdir():
            if f.is_file():
                shutil.copy2(f, python / f.name)
        shutil.copy2(self.home / "python_backend_stubs" / PY / "triton_python_backend_stub", python)
        for stand_in in STAND_INS.iterdir():
            if (stand_in / "model.py").is_file():
                shutil.copytree(stand_in, into / stand_in.name, ignore=shutil.ignore_patterns("__pycache__"))
        return into


def cache_root() -> Path:
    return Path(os.environ.get("ZOODEPLOY_TRITON_HOME") or Path.home() / ".cache" / "zoodeploy" / "triton")


def _requirements() -> list[str]:
    import onnxruntime
    return ["numpy<2", f"onnxruntime=={onnxruntime.__version__}", "pillow"]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


_failed: dict[Path, str] = {}  # one try per process: a failed install is not retried by every module


def triton_install() -> TritonInstall:
    """The cached server environment, made on first use; TritonUnavailable says why it cannot be."""
    import onnxruntime
    env = cache_root() / f"{PYTRITON.replace('==', '-')}-py{PY}-ort{onnxruntime.__version__}"
    if env in _failed:
        raise TritonUnavailable(_failed[env])
    install = TritonInstall(env)
    with _locked(env.with_name(env.name + ".lock")):
        if not (env / "ready").is_file():
            try:
                _make(install)
            except TritonUnavailable as e:
                _failed[env] = str(e)
                raise
    return install


def _make(install: TritonInstall) -> None:
    shutil.rmtree(install.env, ignore_errors=True)
    pip = [str(install.env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = [[sys.executable, "-m", "venv", str(install.env)],
             [*pip, *_requirements()],
             [*pip, "--no-deps", PYTRITON]]  # only its tritonserver binary is used, not its Python API
    for cmd in steps:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise TritonUnavailable(f"Triton server not installed: `{' '.join(cmd[-3:])}` took over "
                                    f"{INSTALL_TIMEOUT:.0f}s") from None
        if r.returncode:
            last = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise TritonUnavailable(f"Triton server not installed ({PYTRITON} into {install.env}): {last[0]}")
    stub = install.home / "python_backend_stubs" / PY / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonUnavailable(f"{PYTRITON} has no Python backend stub for Python {PY}")
    missing = _missing_libraries(stub, install.environ())
    if missing:
        raise TritonUnavailable(f"Triton's Python backend stub cannot run here: {', '.join(missing)} not found "
                                "(a Python built without --enable-shared has no libpython)")
    (install.env / "ready").write_text(PYTRITON + "\n")


def _missing_libraries(binary: Path, env: dict[str, str]) -> list[str]:
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, timeout=60)
    return [line.split()[0] for line in r.stdout.splitlines() if "not found" in line]


class TritonServer(ChildServer):
    """`tritonserver --model-repository REPO...` on 127.0.0.1; a context manager that waits for readiness."""

    what = "tritonserver"
    poll_seconds = 0.2

    def __init__(self, repository: str | Path | list[str | Path], *, log: str | Path,
                 install: TritonInstall | None = None, start_timeout: float = 90.0, args: tuple[str, ...] = ()):
        super().__init__(log, start_timeout)
        self.install = install or triton_install()
        repositories = repository if isinstance(repository, list) else [repository]
        self.repositories = [Path(r) for r in repositories]
        self.http_port, self.grpc_port, self.metrics_port = _free_ports(3)
        self.url = f"127.0.0.1:{self.http_port}"  # tritonclient.http's form (no scheme)
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self._args = args
        self._backends: Path | None = None

    @property
    def ready_url(self) -> str:
        return f"http://{self.url}/v2/health/ready"

    def command(self) -> list[str]:
        self._backends = Path(tempfile.mkdtemp(prefix="triton-backends-"))
        backends = self.install.backends(self._backends / "b")
        return [str(self.install.binary), *(f"--model-repository={r}" for r in self.repositories),
                f"--backend-directory={backends}", "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}", "--metrics-address=127.0.0.1",
                f"--metrics-port={self.metrics_port}", "--log-verbose=0",
                f"--exit-timeout-secs={EXIT_TIMEOUT}", *self._args]

    def _popen(self) -> dict:
        return {"args": self.command(), "env": self.install.environ()}

    def tail(self, lines: int = 40) -> str:
        return super().tail(lines)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the server (it stops its stubs), then SIGKILL to whatever it started that is left."""
        if self._proc is not None:
            self._remember_children()
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for pid in self._children:
                try:
                    psutil.Process(pid).kill()
                except psutil.NoSuchProcess:
                    pass
            self._proc = None
            self._children.clear()
        if self._backends is not None:
            shutil.rmtree(self._backends, ignore_errors=True)
            self._backends = None


def refusal(repository: str | Path, log: str | Path, timeout: float = 90.0) -> str:
    """Start a server on a repository that should not load; returns its log once it has exited.

    Triton exits (--exit-on-error, its default) when a model fails to load at start-up."""
    server = TritonServer(repository, log=log)
    try:
        server.start()
    except ServerError:
        return Path(log).read_text(errors="replace")
    finally:
        server.stop()
    raise AssertionError(f"tritonserver loaded {repository}; it should have refused it")


def _free_ports(n: int) -> tuple[int, ...]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return tuple(sorted(ports))
