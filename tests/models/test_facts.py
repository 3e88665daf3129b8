"""`models/facts.py` (what `zoodeploy models list` prints without importing torch) is the registry's own
figures: every entry, in zoo order, field for field. After adding or changing an entry under
models/archs/, rewrite the table with `python tests/models/test_facts.py --write`."""

import dataclasses
import sys
from pathlib import Path

from zoodeploy.models import facts
from zoodeploy.models.facts import Facts, zoo_facts
from zoodeploy.models.zoo import get_spec, list_models


def _real_torchvision_names() -> list[str]:
    import torchvision
    return torchvision.models.list_models(module=torchvision.models)


SOURCE = Path(facts.__file__)
MARK = "# ---- written by `python tests/models/test_facts.py --write`: do not edit by hand ----\n"


def table() -> str:
    import textwrap

    import torchvision
    rows = "".join(_row(Facts.of(get_spec(name))) for name in list_models())
    names = textwrap.fill(", ".join(map(repr, _real_torchvision_names())), 112, initial_indent="    ", subsequent_indent="    ")
    return (f"{MARK}ZOO: tuple[Facts, ...] = (\n{rows})\n"
            f"TORCHVISION_VERSION = {torchvision.__version__.split('+')[0]!r}\n"
            f"TORCHVISION_NAMES: tuple[str, ...] = (\n{names},\n)\n")


def _row(facts: Facts, width: int = 116) -> str:
    """`    Facts(name='lenet5', ...),` wrapped between fields at `width` columns."""
    lines, line = [], "    Facts("
    for i, f in enumerate(dataclasses.fields(facts)):
        field = f"{f.name}={getattr(facts, f.name)!r}" + ("," if i < len(dataclasses.fields(facts)) - 1 else "),")
        if len(line) + len(field) > width and not line.endswith("("):
            lines.append(line.rstrip())
            line = " " * 10
        line += field + " "
    return "\n".join([*lines, line.rstrip()]) + "\n"


def test_the_facts_are_the_registrys():
    assert [Facts.of(get_spec(n)) for n in list_models()] == list(facts.ZOO), (
        "models/facts.py differs from the zoo: run `python tests/models/test_facts.py --write`")


def test_the_stored_torchvision_catalogue_is_the_installed_ones():
    import torchvision
    assert facts.torchvision_catalogue() is not None, (
        f"models/facts.py was written from torchvision {facts.TORCHVISION_VERSION}, {torchvision.__version__} is "
        "installed: run `python tests/models/test_facts.py --write`")
    assert list(facts.TORCHVISION_NAMES) == _real_torchvision_names()


def test_a_mistyped_name_is_refused_as_the_zoo_refuses_it():
    import pytest
    from zoodeploy.errors import UnknownNameError
    with pytest.raises(UnknownNameError) as from_facts:
        zoo_facts().get("resnet5")
    with pytest.raises(UnknownNameError) as from_zoo:
        get_spec("resnet5")
    assert str(from_facts.value) == str(from_zoo.value)


if __name__ == "__main__" and "--write" in sys.argv:
    text = SOURCE.read_text()
    SOURCE.write_text(text[:text.index(MARK)] + table())
    print(f"rewrote the zoo's facts in {SOURCE}")
