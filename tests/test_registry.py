"""Registry: duplicate names refused; an unknown name suggests and lists, or points to a hint."""

from __future__ import annotations

import pytest

from zoodeploy.errors import UnknownNameError
from zoodeploy.registry import Registry


def test_duplicate_name_is_an_error():
    reg = Registry("pass")
    reg.add("fuse", 1)
    with pytest.raises(ValueError, match="duplicate pass name: 'fuse'"):
        reg.add("fuse", 2)


def test_unknown_name_suggests_and_lists_the_known_names():
    reg = Registry("pass")
    reg.add("fuse", 1)
    reg.add("prune", 2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("fuze")
    assert str(err.value) == "unknown pass 'fuze'; did you mean fuse? (known: fuse, prune)"


def test_a_hint_replaces_the_list():
    reg = Registry("model", hint="list them with `zoodeploy models list`")
    reg.add("resnet50", 1)
    with pytest.raises(UnknownNameError) as err:
        reg.get("vit")
    assert str(err.value) == "unknown model 'vit' (list them with `zoodeploy models list`)"
