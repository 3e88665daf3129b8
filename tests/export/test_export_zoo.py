"""Zoo models export at their full default size (224 px) too; the sweep over every architecture
at small inputs is tests/optimize/test_zoo_sweep.py (export, then fuse + int8, one artifact)."""

import pytest
from zoo_support import assert_exported

from zoodeploy.card import load_card
from zoodeploy.models.zoo import get_spec


@pytest.mark.parametrize("name", ["squeezenet1_1", "nin"])  # and lenet5, whose default is 32 px
def test_small_model_exports_at_its_full_default_size(zoo_artifact, name):
    size = get_spec(name).input_size
    art = zoo_artifact(name, image_size=size)
    assert load_card(art).input_size == size == 224
    assert_exported(art, name)
