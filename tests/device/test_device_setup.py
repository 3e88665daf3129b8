"""What the emulated ARM64 device needs from the host, checked without making it (fast, no root needed)."""

from __future__ import annotations

import json

import pytest

from zoodeploy.device import arm64
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
                                                     "debootstrap && update-binfmts --enable qemu-aarch64"):
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
