"""Bundles made once per session from the shared trained lenet5."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_helpers import unpack

from zoodeploy.package import PackageConfig, package


@pytest.fixture(scope="session")
def bundles(trained, tmp_path_factory):
    """bundles(target) -> a verified fp32 bundle of the trained lenet5 (made once per target).

    The trained artifact is only read: packaging never writes into the artifact.
    """
    root = tmp_path_factory.mktemp("bundles")
    made: dict[str, Path] = {}

    def get(target: str = "cpu") -> Path:
        if target not in made:
            made[target] = package(trained("lenet5"), root / f"lenet5-fp32-{target}.tar.gz",
                                   PackageConfig(variant="fp32", target=target)).path
        return made[target]

    return get


@pytest.fixture
def bundle_copy(bundles, tmp_path):
    """bundle_copy(target) -> a private extracted copy of a bundle, to alter."""
    def get(target: str = "cpu") -> Path:
        return unpack(bundles(target), tmp_path / f"x-{target}")
    return get
