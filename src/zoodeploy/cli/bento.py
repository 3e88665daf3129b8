"""`zoodeploy bento import | samples`: an artifact into BentoML's model store; images to send."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoodeploy.cli.common import ArtifactArg, JsonFlag, console, print_json

app = typer.Typer(no_args_is_help=True, help="Serving with BentoML: save artifacts to the model store, write sample requests.")

VariantOpt = Annotated[str | None, typer.Option(
    "--variant", help="Variant to store (default: the card's selected one).")]
NameOpt = Annotated[str | None, typer.Option(
    "--name", help="Store model name (default: zoodeploy-ARCH).")]


@app.command("import")
def import_cmd(artifact: ArtifactArg, variant: VariantOpt = None, name: NameOpt = None,
               json: JsonFlag = False) -> None:
    """Save ARTIFACT's card and served variant as a model in BentoML's store (BENTOML_HOME)."""
    from zoodeploy.serve.store import import_artifact
    done = import_artifact(artifact, variant=variant, name=name)
    if json:
        print_json({"tag": done.tag, "created": done.created, "variant": done.variant, "path": str(done.path)})
        return
    verb = "saved" if done.created else "already in the store:"
    console.print(f"[green]{verb}[/] {done.tag} (variant {done.variant})\n"
                  f"  serve it:       ZOODEPLOY_MODEL={done.tag} bentoml serve\n"
                  f"  build a Bento:  bentoml build --arg model={done.tag}", soft_wrap=True)
    typer.echo(done.tag)


@app.command("samples")
def samples_cmd(artifact: ArtifactArg,
                out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the PNG files.")],
                per_class: Annotated[int, typer.Option(min=1, help="Images of each class.")] = 1,
                port: Annotated[int, typer.Option(
                    min=1, max=65535, envvar="BENTOML_PORT",
                    help="The server's port, for the example command (as `bentoml serve --port`).")] = 3000,
                json: JsonFlag = False) -> None:
    """Write held-out test images of ARTIFACT's data, one PNG per class, to send to the server."""
    from zoodeploy.serve.samples import write_samples
    paths = write_samples(artifact, out, per_class=per_class)
    if json:
        print_json([str(p) for p in paths])
        return
    console.print(f"[green]wrote[/] {len(paths)} test images to {out}; e.g. curl -F image=@{paths[0]} "
                  f"localhost:{port}/classify", soft_wrap=True)
