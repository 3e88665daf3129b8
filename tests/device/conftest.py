"""The emulated ARM64 device for tests marked `arm64` (run them with scripts/test-arm64.sh).

Making the device's root takes minutes the first time on a machine, so the `arm64` tests run
only when the marker expression asks for them (`-m arm64`); there, a device that cannot be made
is a failure with its one-line reason, not a skip.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    if "arm64" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="emulated ARM64 device tests: run scripts/test-arm64.sh (pytest -m arm64)")
    for item in items:
        if "arm64" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device():
    from zoodeploy.device import ensure_device
    return ensure_device(say=print)
