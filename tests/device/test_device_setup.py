"""What the emulated ARM64 device needs from the host, checked without making it (fast, no root needed)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from zoodeploy.device import arm64
from zoodeploy.device.arm64 import DeviceError
from zoodeploy.errors import MissingDependencyError

HANDLER = ("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n"
           "magic 7f454c460201010000000000000000000200b700\n")


@pytest.fixture
def binfmt(tmp_path, monkeypatch):
    """A fake binfmt_misc folder (mounted: it has a status file) the checks read instead of /proc's."""
    (tmp_path / "status").write_text("enabled\n")
    monkeypatch.setattr(arm64, "BINFMT", tmp_path)
    monkeypatch.setattr(arm64.shutil, "which", lambda tool: None)  # nothing to register a handler with
    return tmp_path


def test_no_aarch64_handler_names_the_packages_to_install(binfmt):
    with pytest.raises(MissingDependencyError, match="apt-get install -y qemu-user-static binfmt-support "
                                                     "&& update-binfmts --enable qemu-aarch64"):
        arm64.ensure_binfmt()


@pytest.mark.parametrize("text, needle", [(HANDLER.format(flags="P"), "with the F flag"),
                                          (HANDLER.format(flags="PF").replace("enabled", "disabled"),
                                           "update-binfmts --enable qemu-aarch64")])
def test_an_unusable_handler_is_one_clear_error(binfmt, text, needle):
    (binfmt / "qemu-aarch64").write_text(text)
    with pytest.raises(MissingDependencyError, match=needle) as e:
        arm64.ensure_binfmt()
    assert "\n" not in str(e.value)


def test_a_registered_handler_with_fix_binary_passes(binfmt):
    (binfmt / "qemu-aarch64").write_text(HANDLER.format(flags="PF"))
    arm64.ensure_binfmt()


def test_not_root_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(arm64.os, "geteuid", lambda: 1000)
    with pytest.raises(MissingDependencyError, match="needs root"):
        arm64.check_host()


def test_a_root_is_reused_only_when_its_marker_matches(tmp_path):
    assert not arm64.is_current(tmp_path)  # no marker: unfinished
    (tmp_path / arm64.MARKER).write_text(json.dumps({**arm64.wanted_marker(), "qemu": "qemu-aarch64 7.2"}))
    assert arm64.is_current(tmp_path)
    old = {**arm64.wanted_marker(), "runtime": {**arm64.RUNTIME, "onnxruntime": "1.19.2"}}
    (tmp_path / arm64.MARKER).write_text(json.dumps(old))
    assert not arm64.is_current(tmp_path)  # another pinned runtime: made again


@pytest.mark.parametrize("missing, needle", [("apt-get", "apt-get (the device's root is made from Debian arm64 "
                                                          "packages) is not available: run it on a Debian or Ubuntu host"),
                                             ("dpkg-deb", "dpkg-deb (the device's root"),
                                             ("keyring", "apt-get install -y debian-archive-keyring")])
def test_a_host_without_apt_or_the_debian_keyring_is_one_clear_error(monkeypatch, tmp_path, missing, needle):
    monkeypatch.setattr(arm64.os, "geteuid", lambda: 0)
    monkeypatch.setattr(arm64.shutil, "which", lambda tool: None if tool == missing else f"/usr/bin/{tool}")
    monkeypatch.setattr(arm64, "KEYRING", tmp_path / ("absent.gpg" if missing == "keyring" else ""))
    monkeypatch.setattr(arm64, "ensure_binfmt", lambda: None)
    with pytest.raises(MissingDependencyError, match=needle.replace("(", r"\(").replace(")", r"\)")) as e:
        arm64.check_host()
    assert "\n" not in str(e.value)


def test_apt_works_in_its_own_folder_and_leaves_the_hosts_apt_alone(tmp_path):
    cmd = arm64.apt_command(tmp_path)
    options = dict(arg.split("=", 1) for arg in cmd[cmd.index("-o"):] if arg != "-o")
    assert options["APT::Architecture"] == options["APT::Architectures"] == "arm64"
    assert options["Dir::Etc::SourceParts"] == "/dev/null"  # not the host's sources.list.d
    for key in ("Dir::Etc::SourceList", "Dir::State", "Dir::State::status", "Dir::Cache"):
        assert options[key].startswith(str(tmp_path)), key  # lists, cache and dpkg status: private


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_unpacked_debs_make_a_root_with_python3_and_its_mount_points(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text("Package: libfake1\nVersion: 1:2.0-1\nArchitecture: arm64\n"
                                        "Maintainer: t <t@example.org>\nDescription: a test package\n")
    (pkg / "usr/bin").mkdir(parents=True)
    (pkg / "usr/bin/python3.11").write_text("not really python\n")
    deb = tmp_path / "libfake1_1%3a2.0-1_arm64.deb"  # apt's file name: the epoch's colon quoted
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb)], check=True, capture_output=True)
    root = tmp_path / "root"
    assert arm64.unpack_debs([deb], root) == ["libfake1=1:2.0-1"]
    assert (root / "usr/bin/python3").resolve() == (root / "usr/bin/python3.11").resolve()
    assert all((root / d).is_dir() for d in ("proc", "sys", "dev", "tmp"))
    assert (root / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert not (root / "DEBIAN").exists()  # files only: no maintainer scripts in the root


def test_a_root_that_fails_to_be_made_leaves_nothing_behind(monkeypatch, tmp_path):
    def fail(folder):
        (folder / "state").mkdir(parents=True)
        raise DeviceError("apt-get update failed (exit 100): planted")
    monkeypatch.setattr(arm64, "fetch_debs", fail)
    root = tmp_path / "arm64-root"
    with pytest.raises(DeviceError, match="planted"):
        arm64._make_root(root, say=lambda line: None)
    assert list(tmp_path.iterdir()) == []  # no root, no half-made one, no apt folder
    assert not arm64.is_current(root)
