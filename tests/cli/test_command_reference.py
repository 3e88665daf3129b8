"""The README's command reference is what `--help` says: every command, its arguments and every
option spelling (aliases and --no- forms included), generated from the CLI itself. After changing an
option, rewrite the section with `python tests/cli/test_command_reference.py --write`."""

import re
import sys
from pathlib import Path

import typer.core
import typer.main

from zoodeploy.cli.app import COMMANDS, make_app

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- command reference: generated from --help by tests/cli/test_command_reference.py --write -->"
END = "<!-- end of command reference -->"


def _commands() -> list[tuple[str, object]]:
    """Every leaf command as a user types it: ("models list", <click.Command>), ..."""
    out = []
    for name in COMMANDS:
        cmd = typer.main.get_command(make_app(name)).commands[name]
        subs = cmd.commands.items() if hasattr(cmd, "commands") else [("", cmd)]
        out += [(f"{name} {sub}".strip(), c) for sub, c in subs]
    return out


def _line(path: str, cmd) -> str:
    args = " ".join(p.name.upper() + ("..." if p.nargs == -1 else "") for p in cmd.params
                    if isinstance(p, typer.core.TyperArgument))
    opts = []
    for p in cmd.params:
        if isinstance(p, typer.core.TyperOption):
            names = "/".join([*p.opts, *p.secondary_opts])
            opts.append(f"`{names}`" + (" (required)" if p.required else ""))
    summary = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
    return f"- `zoodeploy {path}{' ' + args if args else ''}`: {summary} Options: {', '.join(opts) or 'none'}."


def reference() -> str:
    lines = [_line(path, cmd) for path, cmd in _commands()]
    return "\n".join([BEGIN, *lines, END])


def _section(text: str) -> str:
    m = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.S)
    assert m, f"README.md has no command reference between {BEGIN!r} and {END!r}"
    return m.group(0)


def test_readme_command_reference_matches_help():
    assert _section(README.read_text()) == reference(), (
        "the README's command reference differs from --help: run `python tests/cli/test_command_reference.py --write`")


def test_every_command_has_one_spelling_of_its_shared_options():
    """`--input-size` (with `--image-size` its alias), `--json/--no-json`, `--max-drop` with one default."""
    from zoodeploy.cli.common import DEFAULT_MAX_DROP
    for path, cmd in _commands():
        for p in cmd.params:
            if not isinstance(p, typer.core.TyperOption):
                continue
            if "--image-size" in p.opts:
                assert p.opts[0] == "--input-size", path
            if p.is_flag and p.opts[0] not in ("--help",):
                assert p.secondary_opts, f"zoodeploy {path} {p.opts[0]}: a flag needs its --no- form"
            if "--max-drop" in p.opts and path != "optimize":  # optimize also takes `none`, as text
                assert p.default == DEFAULT_MAX_DROP, path
            if "--max-drop" in p.opts and path == "optimize":
                assert float(p.default) == DEFAULT_MAX_DROP


if __name__ == "__main__" and "--write" in sys.argv:
    text = README.read_text()
    README.write_text(text.replace(_section(text), reference()))
    print(f"rewrote the command reference in {README}")
