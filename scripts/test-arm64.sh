#!/usr/bin/env bash
# CI step: the tests marked `arm64`, on an emulated ARM64 device (Debian arm64's python3.11 with
# the pinned aarch64 onnxruntime / numpy / pillow wheels, under qemu-user; made once per machine
# in /var/cache/zoodeploy/arm64-root, in about a minute). Needs root on x86-64 Debian or Ubuntu;
# installs qemu-user-static and binfmt-support (and Debian's archive keyring) with apt-get when
# missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" != 0 ]; then
  echo "error: the emulated ARM64 device needs root (chroot, binfmt_misc, its mounts)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "error: the emulated ARM64 device is made from Debian arm64 packages: it needs apt-get and dpkg-deb" >&2
  exit 1
fi
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi
# one process: the device's root is made once (zoodeploy.device.arm64), then every test runs inside it
exec .venv/bin/python -m pytest -q -p no:cacheprovider -m arm64 tests/device "$@"
