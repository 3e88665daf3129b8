"""`zoodeploy models list | info`: the zoo's architectures and their measured figures."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from zoodeploy.cli.common import JsonFlag, print_json
from zoodeploy.models.facts import Facts, IMAGENET, refuse_unknown_architecture, zoo_facts

if TYPE_CHECKING:  # the zoo imports torch: imported by `models info` when it runs, never by `models list`
    from zoodeploy.models.profile import ModelProfile
    from zoodeploy.models.zoo import ModelSpec

app = typer.Typer(no_args_is_help=True, help="The model zoo: list architectures, measure one.")
stdout = Console()

IncludeOpt = Annotated[str | None, typer.Option(
    "--include", help="Only names matching this pattern, e.g. 'resnet*'.")]
InputSizeOpt = Annotated[int | None, typer.Option(
    "--input-size", min=1, help="Input height = width (default: the architecture's).")]
NumClassesOpt = Annotated[int | None, typer.Option(
    "--num-classes", min=1, help="Classes of the head (default: those of the published figures).")]
LayersFlag = Annotated[bool, typer.Option("--layers/--no-layers", help="Add a per-layer table.")]


AllFlag = Annotated[bool, typer.Option("--all/--no-all", help="Also torchvision's classification models outside the zoo.")]


def _torchvision_dict(name: str) -> dict:
    """What torchvision's DEFAULT weights say of a model outside the zoo (its published figures)."""
    from zoodeploy.models.sources import _default_weights
    enum = _default_weights(name)
    meta = enum.meta
    gflops = meta.get("_ops")
    return {"name": name, "family": "torchvision", "year": None, "paper": meta.get("recipe", ""),
            "input_size": int(enum.transforms().crop_size[0]), "min_input_size": None,
            "published_params": meta.get("num_params"),
            "published_macs": int(gflops * 1e9) if gflops else None,  # torchvision's GFLOPS count MACs
            "figures_source": f"torchvision {enum}", "weights_enum": str(enum)}


@app.command("list")
def list_cmd(include: IncludeOpt = None, all: AllFlag = False, json: JsonFlag = False) -> None:
    """List the zoo's architectures with their published figures (--all: and torchvision's others)."""
    zoo = zoo_facts()  # without torch: only --all asks torchvision
    specs = [asdict(zoo.get(name)) for name in zoo.names(include)]
    if all:
        import fnmatch
        from zoodeploy.models.sources import torchvision_names
        specs += [_torchvision_dict(n) for n in torchvision_names()
                  if n not in zoo and (include is None or fnmatch.fnmatch(n, include))]
    if json:
        print_json(specs)
        return
    table = Table(Column("name", no_wrap=True),  # names are what users copy
                  "family", "year", "input", "params", "MACs", "weights", box=box.SIMPLE_HEAD,
                  pad_edge=False,
                  caption="params, MACs: published, at the input size; weights: pretrained ones")
    for s in specs:
        table.add_row(s["name"], s["family"], str(s["year"] or ""), str(s["input_size"]), _si(s["published_params"]),
                      _si(s["published_macs"]), IMAGENET if s["weights_enum"] else "")
    stdout.print(table)


@app.command("info")
def info_cmd(name: Annotated[str, typer.Argument(help="Architecture, e.g. resnet50.")],
             input_size: InputSizeOpt = None, num_classes: NumClassesOpt = None,
             layers: LayersFlag = False, json: JsonFlag = False) -> None:
    """Build one architecture (zoo or torchvision) and measure its parameters, MACs and activation memory."""
    refuse_unknown_architecture(name)  # a mistyped name, before torch loads
    if name not in zoo_facts():
        from zoodeploy.models.sources import resolve_source
        if resolve_source(name).kind == "torchvision":
            return _torchvision_info(name, input_size, num_classes, layers, json)
    from zoodeploy.models.profile import profile_arch
    from zoodeploy.models.zoo import get_spec
    spec = get_spec(name)
    classes = num_classes or spec.figures_num_classes
    profile = profile_arch(name, input_size=input_size, num_classes=classes, layers=layers)
    if json:
        # the measured input_size replaces the default one, which stays as default_input_size
        print_json({**asdict(Facts.of(spec)), "default_input_size": spec.input_size,
                    **profile.to_dict(), "num_classes": classes,
                    "preprocessing": spec.preprocessing.to_dict()})
        return
    stdout.print(_summary_table(spec, profile, classes))
    if layers:
        stdout.print(_layers_table(profile))


def _summary_table(spec: ModelSpec, p: ModelProfile, classes: int) -> Table:
    table = Table("", "measured", "published", title=f"{spec.name}: {spec.paper} ({spec.year})",
                  caption=f"published: {spec.figures_source}" if spec.figures_source else None)
    table.add_row("input", f"{p.input_size}x{p.input_size}, {classes} classes",
                  f"{spec.input_size}x{spec.input_size}, {spec.figures_num_classes} classes")
    table.add_row("params", _si(p.params), _si(spec.published_params))
    if p.aux_params:  # not in the deployed model, so not in `params`
        table.add_row("aux heads (training only)", _si(p.aux_params), "")
    table.add_row("MACs", _si(p.macs), _si(spec.published_macs))
    table.add_row("activations", f"{p.activation_bytes / 2**20:.1f} MiB", "")
    return table


def _layers_table(p: ModelProfile) -> Table:
    table = Table("layer", "type", "output", "params", "MACs")
    for r in p.layers:
        table.add_row(r.name, r.type, "x".join(map(str, r.output_shape)), f"{r.params:,}",
                      f"{r.macs:,}")
    return table


def _si(n: int | None) -> str:
    """2_500_000 -> '2.50 M'; None -> '-'."""
    if n is None:
        return "-"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _torchvision_info(name: str, input_size: int | None, num_classes: int | None, layers: bool, json: bool) -> None:
    import torch
    import torchvision.models as tvm
    from zoodeploy.errors import ZoodeployError
    from zoodeploy.models.profile import profile_model
    from zoodeploy.models.sources import _default_weights, weights_preprocessing
    published = _torchvision_dict(name)
    prep = weights_preprocessing(_default_weights(name))
    size, classes = input_size or prep.input_size, num_classes or 1000
    try:  # without allocating weights where the builder allows it (RegNet's computes widths with tensors)
        with torch.device("meta"):
            model = tvm.get_model(name, num_classes=classes)
    except NotImplementedError:
        model = tvm.get_model(name, num_classes=classes)
    try:
        profile = profile_model(model, size, layers=layers)
    except Exception as e:  # noqa: BLE001 - e.g. a ViT at another input size
        raise ZoodeployError(f"{name} does not run at {size}x{size}: {' '.join(str(e).split())[:160]}") from None
    if json:
        print_json({**published, "default_input_size": published["input_size"], **profile.to_dict(),
                    "num_classes": classes, "preprocessing": prep.to_dict()})
        return
    table = Table("", "measured", "published", title=f"{name} (torchvision)", caption=f"published: {published['figures_source']}")
    table.add_row("input", f"{size}x{size}, {classes} classes", f"{published['input_size']}x{published['input_size']}, 1000 classes")
    table.add_row("params", _si(profile.params), _si(published["published_params"]))
    table.add_row("MACs", _si(profile.macs), _si(published["published_macs"]))
    table.add_row("activations", f"{profile.activation_bytes / 2**20:.1f} MiB", "")
    stdout.print(table)
    if layers:
        stdout.print(_layers_table(profile))
