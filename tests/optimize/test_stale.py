"""Variants know their source, on real passes: each records the pass that made it and its source
variant's sha256; when the source is remade differently, what was made from it is stale, refused by
the one variant rule (serve, package, predict) with the command that remakes it, and that command
(a variant's name taken for its pass) rebuilds it."""

import shutil

import pytest

from zoodeploy.artifact import Artifact, stale_reason
from zoodeploy.errors import ArtifactError
from zoodeploy.optimize import OptimizeConfig, optimize

QUIET = dict(max_drop=None, bench=False, threads=1)


def test_a_variant_made_from_a_rebuilt_source_is_stale_refused_and_rebuilt_on_request(optimized, tmp_path):
    art_dir = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art_dir)
    optimize(art_dir, OptimizeConfig(passes=("int8", "ort-format"), calib_size=32, **QUIET))
    card = Artifact(art_dir).card
    ort = card.variants["int8-ort"].recipe
    assert (ort.made_by_pass, ort.source_variant, ort.source_sha256) == ("ort-format", "int8", card.variants["int8"].sha256)
    assert card.variants["int8"].recipe.source_variant in ("fused", "fp32")  # the file it quantized

    optimize(art_dir, OptimizeConfig(passes=("int8",), calib_size=8, **QUIET))  # int8 remade, differently
    art = Artifact(art_dir)
    assert stale_reason(art.card, "int8-ort") == "its source 'int8' was rebuilt after it was made"
    assert any(n.startswith("stale: ") for n in art.card.variants["int8-ort"].notes)  # marked in the card
    with pytest.raises(ArtifactError, match=f"rebuild it with `zoodeploy optimize {art_dir} --passes ort-format`"):
        art.resolve_variant("int8-ort")

    optimize(art_dir, OptimizeConfig(passes=("int8-ort",), **QUIET))  # the variant's name: its pass
    art = Artifact(art_dir)
    assert stale_reason(art.card, "int8-ort") is None and not art.card.variants["int8-ort"].notes
    assert art.resolve_variant("int8-ort").name == "int8-ort"
