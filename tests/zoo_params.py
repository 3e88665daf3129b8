"""The zoo as pytest parameters, shared by the export and optimize sweeps."""

from __future__ import annotations

import pytest

from zoodeploy.models.zoo import get_spec, list_models

BIG = 100_000_000  # parameters: the VGGs, whose 0.5 GB classifiers make every save, load and session slow


def zoo_params() -> list:
    """Every zoo name; the >100M-parameter ones marked `slow`. Each name is its own pytest-xdist
    group: both sweeps use the same exported artifact (the session's `zoo_artifact`), so they
    run in the worker that exported it."""
    return [pytest.param(n, marks=[pytest.mark.xdist_group(n)]
                         + ([pytest.mark.slow] if (get_spec(n).published_params or 0) > BIG else []))
            for n in list_models()]
