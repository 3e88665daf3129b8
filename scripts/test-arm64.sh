#!/usr/bin/env bash
# CI step: the tests marked `arm64`, on an emulated ARM64 device (a Debian arm64 root under
# qemu-user, made once per machine in /var/cache/zoodeploy/arm64-root). Needs root on x86-64
# Linux; installs qemu-user-static, binfmt-support and debootstrap with apt-get when missing.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" != 0 ]; then
  echo "error: the emulated ARM64 device needs root (debootstrap, chroot, binfmt_misc)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null \
   || ! command -v update-binfmts >/dev/null; then
  echo "==> installing qemu-user-static binfmt-support debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null \
    || { apt-get update -q >/dev/null && \
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null; }
fi
# one process: the device's root is made once, then every test runs inside it
exec .venv/bin/python -m pytest -q -p no:cacheprovider -m arm64 tests/device "$@"
