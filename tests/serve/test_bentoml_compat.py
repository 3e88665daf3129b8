"""BentoML internals stay behind one adapter, which fails loudly when BentoML or its names change."""

from __future__ import annotations

import re
from pathlib import Path

import bentoml
import pytest

from zoodeploy.serve import bentoml_compat
from zoodeploy.serve.bentoml_compat import TESTED, UNMATCHED, BentoMLVersionError, check_version, endpoint_label

SERVE = Path(bentoml_compat.__file__).parent
PRIVATE = re.compile(r"\b(bentoml\._internal|_bentoml_impl|_bentoml_sdk)\b")


def test_installed_bentoml_is_the_tested_range():
    check_version(bentoml.__version__)  # what importing the adapter does
    assert TESTED == ((1, 4), (1, 5))  # pyproject pins bentoml>=1.4,<1.5: change both together
    pyproject = (SERVE.parents[2] / "pyproject.toml").read_text()
    assert '"bentoml>=1.4,<1.5"' in pyproject


@pytest.mark.parametrize("version", ["1.5.0", "1.3.9", "2.0.0", "0.13.1", "unknown"])
def test_an_untested_version_is_refused_with_what_to_do(version):
    with pytest.raises(BentoMLVersionError) as e:
        check_version(version)
    message = str(e.value)
    assert f"bentoml {version} is installed" in message
    assert "pip install 'bentoml>=1.4,<1.5'" in message and "bentoml_compat.py" in message


@pytest.mark.parametrize("version", ["1.4.0", "1.4.40", "1.4.99rc1"])
def test_tested_versions_pass(version):
    check_version(version)


def test_the_internal_names_still_resolve_and_mean_the_same():
    store = Path(bentoml_compat.model_store_dir())
    assert store.name == "models"


def test_no_other_serve_module_reaches_into_bentoml_internals():
    offenders = [p.name for p in SERVE.glob("*.py")
                 if p.name != "bentoml_compat.py" and PRIVATE.search(p.read_text())]
    assert offenders == []


def test_metric_labels_are_route_templates_and_one_value_for_the_rest():
    label = endpoint_label(["/classify", "/v2/models/{model}", "/v2/models/{model}/infer"])
    paths = ("/classify", "/readyz", "/v2/models/junk1", "/v2/models/m/infer", "/static_content/a.js")
    assert [label(p) for p in paths] == ["/classify", "/readyz", "/v2/models/{model}", "/v2/models/{model}/infer",
                                         "/static_content/{path:path}"]
    assert {label(p) for p in ("/junk1", "/junk2/x", "/classify/x", "/v2/models/a/b/c")} == {UNMATCHED}
