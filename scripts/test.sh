#!/usr/bin/env bash
# Set up .venv (if needed) and run the test suite, one pytest-xdist worker per core (at most 4;
# each worker is pinned to its core, see tests/conftest.py). Extra arguments go to pytest.
#   bash scripts/test.sh           everything (what CI runs)
#   bash scripts/test.sh --quick   the quick tier: every package, but nothing that trains a model,
#                                  starts a server, exports the zoo or is marked slow
# The tier markers (trains, server, zoo) are set by tests/conftest.py from the fixtures a test uses.
set -euo pipefail
cd "$(dirname "$0")/.."
tier=()
if [[ "${1:-}" == "--quick" ]]; then
  shift
  tier=(-m "not trains and not server and not zoo and not slow")
fi
bash scripts/setup.sh
# glibc keeps what the tests free instead of unmapping it: the suite moves model files of up to
# 0.5 GB (VGG) through load, serialize and save many times, and on our VMs every fresh page costs a
# fault to the hypervisor. Measured: the VGG-16 zoo sweep entry 97-108 s -> 61-66 s on one core.
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=268435456
# Test files (models of up to 0.5 GB, written and deleted hundreds of times) go to RAM when
# /dev/shm has room: on our VMs writing 0.5 GB to the ext4 disk takes 7-8 s, to tmpfs 0.3 s
# (a VGG zoo-sweep entry writes six such files). Removed when the run ends, whatever its result.
temp=()
shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $1 == "tmpfs" { print $4 }')
if [[ -z "${ZOODEPLOY_TEST_DISK_TMP:-}" && "${shm_free_kb:-0}" -ge $((12 * 1024 * 1024)) ]]; then
  TMPDIR=$(mktemp -d /dev/shm/zoodeploy-tests.XXXXXX)
  export TMPDIR
  trap 'rm -rf "$TMPDIR"' EXIT
  temp=(--basetemp "$TMPDIR/pytest")
fi
.venv/bin/python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadgroup "${temp[@]}" "${tier[@]}" "$@"
