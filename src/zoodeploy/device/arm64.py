"""An emulated ARM64 device: Debian arm64's Python under qemu-user, with a bundle's runtime.

`ensure_device() -> EmulatedDevice` makes the root once per machine (cached in `ROOT`, built in a
temporary folder and renamed into place, so a half-made root is never used) and checks what
running it needs: root privileges, apt-get and dpkg-deb, `qemu-user-static` and its binfmt_misc
handler for aarch64 ELF files. `EmulatedDevice.run([...])` runs a command inside it with `chroot`;
the kernel hands every aarch64 binary to qemu, so Debian's own python3.11 runs the aarch64
onnxruntime / numpy / pillow wheels there.

Nothing is emulated while the root is made, and it is no Debian system: apt resolves Debian
arm64's python3.11 and the shared libraries it and the wheels need (with its own package lists
and an empty package database, so the host's apt and dpkg are left alone), the .debs are
unpacked with `dpkg-deb -x` (no maintainer scripts), and the wheels are fetched and installed
by the host's pip (`--platform manylinux_2_28_aarch64`). The root has no network and no
package manager of its own. (debootstrap's second stage, every package's dpkg run under qemu,
took 46 minutes here; this takes under a minute of CPU.)

Emulated timings mean nothing (qemu translates every instruction); what the device is for is
*what* ARM64 kernels compute: accuracy and drift of an INT8 model where it will run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from zoodeploy.errors import MissingDependencyError, ZoodeployError

ROOT = Path(os.environ.get("ZOODEPLOY_ARM64_ROOT", "/var/cache/zoodeploy/arm64-root"))
MIRROR = os.environ.get("ZOODEPLOY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"  # Debian 12: python3 is 3.11, the wheels below are cp311
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")  # checks the mirror's Release files
PYTHON_VERSION = "3.11"
# bookworm's glibc is 2.36; pip matches --platform tags exactly, so every older manylinux tag is named
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                   "manylinux2014_aarch64")
# What the root holds from Debian, with every dependency apt resolves for them: the interpreter and
# its standard library, and libstdc++, which manylinux wheels (onnxruntime's) take from the system.
DEBIAN_PACKAGES = (f"python{PYTHON_VERSION}-minimal", f"libpython{PYTHON_VERSION}-stdlib", "libstdc++6")
# The runtime inside the device. onnxruntime 1.20.1 is the aarch64 wheel that runs under Debian
# 12's qemu-user 7.2; 1.32.0's aarch64 wheel segfaults under that emulator. numpy and pillow are
# pinned so that every root gets the same decoders and the same figures.
RUNTIME = {"onnxruntime": "1.20.1", "numpy": "2.2.6", "pillow": "11.3.0"}
MARKER = ".zoodeploy-device.json"  # written last: a root without it is not finished
BINFMT = Path("/proc/sys/fs/binfmt_misc")
APT_LINE = "apt-get install -y qemu-user-static binfmt-support"
GUEST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
             "LANG": "C.UTF-8"}  # bytecode of the root's packages is cached in the root: imports take seconds


class DeviceError(ZoodeployError):
    """The emulated device could not be made, or a command inside it failed."""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class EmulatedDevice:
    """A made ARM64 root; `run` executes inside it (chroot, with its own /proc)."""

    root: Path
    info: dict  # the marker: suite, runtime versions, qemu

    name = "arm64"

    @property
    def description(self) -> str:
        return (f"emulated ARM64 (Debian {self.info.get('suite')} arm64 python{self.info.get('python')} under "
                f"{self.info.get('qemu', 'qemu-user')}, onnxruntime {self.info['runtime']['onnxruntime']})")

    def run(self, cmd: Sequence[str], timeout: float = 600, check: bool = True) -> Result:
        """Run `cmd` inside the device; with `check`, a non-zero exit is a DeviceError with its stderr."""
        # /proc, /sys and /dev inside the root, in a private mount namespace (they go away with the
        # process). Without /sys, onnxruntime's cpuinfo cannot count the CPUs, and onnxruntime (1.19-1.22
        # at least) logs that through its default logger before registering one: "Attempt to use
        # DefaultLogger but none has been registered", an abort at session creation, for .onnx and .ort
        # models alike. /dev: the root is unpacked, not installed, so it has no device nodes of its own.
        script = (f'mount -t proc proc "{self.root}/proc" && mount -t sysfs sysfs "{self.root}/sys" && '
                  f'mount --bind /dev "{self.root}/dev" && exec chroot "{self.root}" "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=GUEST_ENV)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"`{' '.join(cmd[:3])}` ran past {timeout:g} s on the {self.name} device") from None
        result = Result(p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            shown = " ".join(cmd[:3]) + (f" … ({len(cmd) - 3} more arguments)" if len(cmd) > 3 else "")
            raise DeviceError(f"`{shown}` failed on the {self.name} device (exit {p.returncode}): "
                              f"{_tail(p.stderr or p.stdout)}")
        return result

    @contextlib.contextmanager
    def workdir(self) -> Iterator[tuple[Path, str]]:
        """A scratch folder inside the device: (its host path, its path as the guest sees it)."""
        host = Path(tempfile.mkdtemp(prefix="zoodeploy-", dir=self.root / "tmp"))
        try:
            yield host, "/" + host.relative_to(self.root).as_posix()
        finally:
            shutil.rmtree(host, ignore_errors=True)


def _tail(text: str, lines: int = 3) -> str:
    """The last lines of a tool's output, on one line (errors stay one line)."""
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)[-600:] or "no output"


# ---------------------------------------------------------------- what the host needs

def check_host() -> None:
    """Raise MissingDependencyError naming the first thing this machine lacks to run the device."""
    if sys.platform != "linux":
        raise MissingDependencyError("the emulated ARM64 device (Linux only)", "run it on an x86-64 Linux machine")
    if os.geteuid() != 0:
        raise MissingDependencyError("the emulated ARM64 device (needs root for chroot and its mounts)",
                                     "run as root, e.g. in the CI container")
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise MissingDependencyError(f"{tool} (the device's root is made from Debian arm64 packages)",
                                         "run it on a Debian or Ubuntu host")
    for tool in ("chroot", "unshare"):
        if shutil.which(tool) is None:
            raise MissingDependencyError(tool, "apt-get install -y coreutils util-linux")
    if not KEYRING.exists():
        raise MissingDependencyError(f"the Debian archive keyring ({KEYRING})", "apt-get install -y debian-archive-keyring")
    if platform.machine() not in ("aarch64", "arm64"):
        ensure_binfmt()


def ensure_binfmt() -> None:
    """The kernel's aarch64 handler (qemu-user-static, registered with the F flag), set up if it can be."""
    handler = BINFMT / "qemu-aarch64"
    if not (BINFMT / "status").exists():  # binfmt_misc not mounted (common in containers)
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True)
    if not handler.exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not handler.exists():
        what = "qemu-user-static" if not Path("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() \
            and shutil.which("qemu-aarch64-static") is None else "a binfmt_misc handler for aarch64"
        raise MissingDependencyError(what, f"{APT_LINE} && update-binfmts --enable qemu-aarch64")
    text = handler.read_text()
    if not text.startswith("enabled"):
        raise MissingDependencyError("an enabled binfmt_misc handler for aarch64", "update-binfmts --enable qemu-aarch64")
    if "F" not in next((ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("flags:")), ""):
        # without F (fix binary) the kernel looks for the interpreter inside the chroot
        raise MissingDependencyError("a binfmt_misc aarch64 handler with the F flag",
                                     "use Debian's qemu-user-static (its handler is registered with F)")


def qemu_version() -> str:
    exe = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not exe:
        return "qemu-user"
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return (p.stdout.splitlines() or ["qemu-user"])[0].replace(" version", "").strip()


# ---------------------------------------------------------------- making the root

def wanted_marker() -> dict:
    """What a finished root records; a root recording anything else is made again."""
    return {"suite": SUITE, "packages": list(DEBIAN_PACKAGES), "runtime": RUNTIME, "python": PYTHON_VERSION}


def read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_current(root: Path) -> bool:
    marker = read_marker(root)
    return marker is not None and all(marker.get(k) == v for k, v in wanted_marker().items())


def ensure_device(root: Path | None = None, say=lambda line: None, make: bool = True) -> EmulatedDevice:
    """The emulated ARM64 device, made at `root` (default ROOT) on first use and reused after;
    with `make` False, a DeviceError when it has not been made on this machine yet."""
    root = Path(root or ROOT)
    check_host()
    if not make and not is_current(root):
        raise DeviceError(f"the emulated ARM64 device is not made on this machine yet ({root}); make it with "
                          "`zoodeploy evaluate ARTIFACT --on arm64` or scripts/test-arm64.sh")
    if not is_current(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        with _lock(root.parent / f"{root.name}.lock"):
            if not is_current(root):  # another process may have made it while we waited
                _make_root(root, say)
    return EmulatedDevice(root, read_marker(root))


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make_root(root: Path, say) -> None:
    """Debian arm64 packages unpacked, the wheels, a check under qemu, the marker; then rename into place."""
    for stale in root.parent.glob(f".{root.name}.tmp-*"):  # left by a build that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    apt = root.parent / f".{root.name}.tmp-{os.getpid()}-apt"
    try:
        say(f"making the ARM64 device root in {root}: Debian {SUITE} arm64 {', '.join(DEBIAN_PACKAGES)}")
        debs = unpack_debs(fetch_debs(apt), tmp)
        say(f"installing {', '.join(f'{k}=={v}' for k, v in RUNTIME.items())} (aarch64 wheels) in the root")
        install_runtime(tmp)
        device = EmulatedDevice(tmp, {**wanted_marker(), "qemu": qemu_version(), "debs": debs})
        # imports under qemu once: their bytecode stays in the root, later runs skip compiling it
        check = device.run(["python3", "-c", "import onnxruntime, numpy, PIL.Image, platform; "
                                              "print(platform.machine(), onnxruntime.__version__)"])
        if not check.stdout.startswith("aarch64"):
            raise DeviceError(f"the ARM64 root does not run aarch64 code: {check.stdout.strip()!r}")
        (tmp / MARKER).write_text(json.dumps(device.info, indent=2) + "\n")
        if root.exists():  # an outdated root: out of the way first, then swap
            old = root.parent / f".{root.name}.tmp-old-{os.getpid()}"
            root.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(apt, ignore_errors=True)


def _host(cmd: list[str], what: str, timeout: float = 900) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{what} ran past {timeout:g} s") from None
    if p.returncode != 0:
        raise DeviceError(f"{what} failed (exit {p.returncode}): {_tail(p.stdout + p.stderr)}")


def apt_command(folder: Path) -> list[str]:
    """apt-get for Debian `SUITE` arm64 with its own sources, lists, cache and an empty package
    database, all in `folder`: it resolves for an empty arm64 system, and the host's apt state,
    dpkg database and architectures stay as they are (no `dpkg --add-architecture`)."""
    options = {
        "APT::Architecture": "arm64", "APT::Architectures": "arm64",
        "Dir::Etc::SourceList": folder / "sources.list", "Dir::Etc::SourceParts": "/dev/null",
        "Dir::Etc::Preferences": "/dev/null", "Dir::Etc::PreferencesParts": "/dev/null",
        "Dir::State": folder / "state", "Dir::State::status": folder / "state/status",
        "Dir::Cache": folder / "cache",
        "APT::Sandbox::User": "root",  # the private folders are root's; _apt could not write there
    }
    return ["apt-get", "-q", *(arg for k, v in options.items() for arg in ("-o", f"{k}={v}"))]


def fetch_debs(folder: Path) -> list[Path]:
    """The arm64 .debs of DEBIAN_PACKAGES and of everything they depend on, as apt's own resolver
    picks them for an empty system (`install --download-only`), downloaded into `folder`."""
    for sub in ("state/lists/partial", "cache/archives/partial"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "state/status").touch()
    (folder / "sources.list").write_text(f"deb [arch=arm64 signed-by={KEYRING}] {MIRROR} {SUITE} main\n")
    apt = apt_command(folder)
    _host([*apt, "update"], f"apt-get update (Debian {SUITE} arm64 package lists from {MIRROR})")
    _host([*apt, "install", "-y", "--download-only", "--no-install-recommends", *DEBIAN_PACKAGES],
          f"apt-get download of Debian {SUITE} arm64 {', '.join(DEBIAN_PACKAGES)} and their dependencies")
    debs = sorted((folder / "cache/archives").glob("*.deb"))
    if not debs:
        raise DeviceError(f"apt-get downloaded no arm64 packages for {', '.join(DEBIAN_PACKAGES)} from {MIRROR}")
    return debs


def unpack_debs(debs: list[Path], root: Path) -> list[str]:
    """Unpack `debs` into `root` with `dpkg-deb -x` (files only: no maintainer scripts, nothing run
    under qemu), then add what installing would have: python3, and the mount points `run` uses.
    Returns the packages as `name=version`, for the marker."""
    root.mkdir(parents=True)
    for deb in debs:
        _host(["dpkg-deb", "-x", str(deb), str(root)], f"dpkg-deb -x {deb.name}")
    for mount_point in ("proc", "sys", "dev", "tmp"):
        (root / mount_point).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    python3 = root / "usr/bin/python3"
    if not python3.exists():  # python3-minimal's one file; that package would pull in dpkg's postinst chain
        python3.symlink_to(f"python{PYTHON_VERSION}")
    name_version = (unquote(d.name).split("_")[:2] for d in debs)
    return [f"{name}={version}" for name, version in name_version]


def install_runtime(root: Path) -> None:
    """Fetch the aarch64 wheels on the host, then install them offline into the root's
    /usr/local/lib/python3.11/dist-packages (on Debian python3's path), with `--no-index`.

    The host's pip installs them (`--target`, `--platform`): the wheels and the files are the
    same as the root's own pip would write, with nothing emulated, and the root needs no pip.
    """
    wheels = root / "opt/zoodeploy/wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pins = [f"{k}=={v}" for k, v in RUNTIME.items()]
    (root / "opt/zoodeploy/requirements.txt").write_text("\n".join(pins) + "\n")
    platforms = [arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)]
    wheel_args = ["--only-binary=:all:", *platforms, "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    _host([*pip[:3], "download", *pip[3:], *wheel_args, "-d", str(wheels), *pins],
          f"pip download of the aarch64 wheels ({', '.join(pins)})")
    site = root / f"usr/local/lib/python{PYTHON_VERSION}/dist-packages"
    _host([*pip[:3], "install", *pip[3:], *wheel_args, "--no-index", "--find-links", str(wheels),
           "--target", str(site), "--no-compile", *pins], "pip install of the aarch64 wheels into the root")
    shutil.rmtree(wheels)  # installed; 40 MB the cached root need not keep
