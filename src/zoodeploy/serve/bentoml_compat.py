"""The one place zoodeploy reaches into BentoML's private modules, checked against its version.

One thing serving needs has no public API in BentoML 1.4: where the model store lives (for
error messages). (Adaptive batching no longer uses BentoML's CORK dispatcher: zoodeploy.serve.batching
says why.) Private names can move in any release, so
importing this module checks the installed version against the range these names were written
and tested for, and refuses any other with a message saying what to do.
"""

from __future__ import annotations

import re

from zoodeploy.errors import ZoodeployError

# pyproject.toml pins bentoml>=1.4,<1.5; tests/serve/test_bentoml_compat.py holds both ends
TESTED = ((1, 4), (1, 5))  # [lowest, first untested): compared on (major, minor)
USED = ("bentoml._internal.configuration.containers.BentoMLContainer.model_store_dir",)


class BentoMLVersionError(ZoodeployError):
    """The installed BentoML is outside the range zoodeploy's use of its internals was tested on."""


def check_version(version: str) -> None:
    """Raise BentoMLVersionError unless `version` is in the TESTED range."""
    match = re.match(r"(\d+)\.(\d+)", version)
    found = (int(match.group(1)), int(match.group(2))) if match else None
    (lo_major, lo_minor), (hi_major, hi_minor) = TESTED
    if found is not None and TESTED[0] <= found < TESTED[1]:
        return
    raise BentoMLVersionError(
        f"bentoml {version} is installed, but zoodeploy's serving uses BentoML internals "
        f"({', '.join(USED)}) written and tested for bentoml>={lo_major}.{lo_minor},<{hi_major}.{hi_minor}; "
        f"install that range (pip install 'bentoml>={lo_major}.{lo_minor},<{hi_major}.{hi_minor}'), or "
        "re-check zoodeploy/serve/bentoml_compat.py against the new release and widen TESTED")


def _installed() -> str:
    import bentoml
    return bentoml.__version__


check_version(_installed())

# after the check: on an untested release these imports may fail or mean something else
from bentoml._internal.configuration.containers import BentoMLContainer  # noqa: E402


def model_store_dir() -> str:
    """Where BentoML keeps its model store (BENTOML_HOME/models unless configured otherwise)."""
    return BentoMLContainer.model_store_dir.get()


__all__ = ["TESTED", "BentoMLVersionError", "check_version", "model_store_dir"]
