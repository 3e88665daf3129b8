"""`optimize` keeps the card's target: re-running `--passes int8` on an artifact built for arm64
quantizes for arm64 again instead of silently switching the card to this host's ISA; naming
another `--target-isa` is what changes it. A pass is named by its variant too."""

import shutil

from cli_support import invoke_cli

from zoodeploy.card import load_card, update_card


def test_optimize_keeps_the_cards_target_isa_unless_told(optimized, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art)
    with update_card(art) as card:
        card.target_isa = "arm64"  # as a mobile build records it
    r = invoke_cli("optimize", art, "--passes", "int8", "--no-bench", "--max-drop", "none", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    card = load_card(art)
    assert card.target_isa == "arm64" and card.variants["int8"].recipe.target_isa == "arm64"
    assert card.variants["int8"].recipe.made_by_pass == "int8"
