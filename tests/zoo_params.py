"""The zoo as pytest parameters, shared by the export and optimize sweeps."""

from __future__ import annotations

import pytest

from zoodeploy.models.zoo import get_spec, list_models

BIG = 100_000_000  # parameters: the VGGs, whose 0.5 GB classifiers make every save, load and session slow
# Deeper stacks of VGG-11's layers (VGG-16-BN covers the BatchNorm variant): 4 of the suite's
# core-minutes, so the default run leaves them to `bash scripts/test.sh -m full_zoo`.
FULL_ZOO_ONLY = {"vgg16", "vgg19"}


def zoo_params() -> list:
    """Every zoo name; the >100M-parameter ones marked `slow`, VGG-16/19 `full_zoo`. Each name is
    its own pytest-xdist group: both sweeps use the same exported artifact (the session's
    `zoo_artifact`), so they run in the worker that exported it."""
    return [pytest.param(n, marks=[pytest.mark.xdist_group(n)]
                         + ([pytest.mark.slow] if (get_spec(n).published_params or 0) > BIG else [])
                         + ([pytest.mark.full_zoo] if n in FULL_ZOO_ONLY else []))
            for n in list_models()]
