"""Where a model comes from: one resolver for every command that takes a SOURCE.

A SOURCE is a zoo name, any torchvision classification model by name, a Python callable
(`path/to/file.py:function` or `package.module:function`) returning an nn.Module, a saved
`torch.export` program (.pt2) or an ONNX classifier. Each kind is one class in `SOURCE_KINDS`;
the first kind that claims the text resolves it. `make_artifact` turns a source, its labels,
preprocessing and data into an artifact (card + checkpoint, program or ONNX file), and
`rebuild_module` loads a recorded source's nn.Module back (models/artifact.py).

A callable source runs the code it names, in this process, with your permissions.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from zoodeploy.card import CHECKPOINT_FILE, ModelCard, SourceSpec, Variant, provenance, save_card
from zoodeploy.errors import DataError, SourceError, UnknownNameError, ZoodeployError
from zoodeploy.fileio import sha256_file
from zoodeploy.models.data import Splits, digits_preprocessing, load_splits
from zoodeploy.models.saved_program import gist, load_program
from zoodeploy.models.weights import IMAGENET
from zoodeploy.preprocess import Preprocessing
from zoodeploy.registry import Registry

NO_WEIGHTS = "none"
PROGRAM_FILE = "source.pt2"  # the user's exported program, the artifact's eager model
FP32_ONNX = "fp32.onnx"
EVAL_ONLY = (0.25, 0.75)  # val / test fractions of an evaluation folder given beside --calib-data


@dataclass(frozen=True)
class Source:
    """A resolved SOURCE: its kind, what it refers to, and what it knows of itself."""

    kind: str
    ref: str  # the name, the callable spec (file made absolute) or the file's absolute path
    name: str  # the card's name
    labels: tuple[str, ...] | None = None  # its own labels (torchvision categories, ONNX metadata)
    preprocessing: Preprocessing | None = None  # its own preprocessing
    input_size: int | None = None  # fixed by the file (ONNX graph, exported program)

    @property
    def has_module(self) -> bool:
        return self.kind != "onnx"


class SourceKind:
    """One kind of source: which texts it claims, how it resolves and builds them."""

    def claims(self, text: str) -> bool:
        raise NotImplementedError

    def resolve(self, text: str) -> Source:
        raise NotImplementedError

    def module(self, source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
        """The nn.Module with `weights` (None: the kind's default)."""
        raise SourceError(f"{source.ref} is an ONNX model: it has no PyTorch module")

    def rebuild(self, spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
        """The module of an artifact made from this kind, from its checkpoint."""
        raise SourceError(f"{spec.ref}: a {spec.kind} source has no PyTorch module to rebuild")


SOURCE_KINDS: Registry[SourceKind] = Registry("source kind")  # tried in this order


def _kind(name: str):
    """Class decorator: register one instance of the kind under `name`."""
    def add(cls: type[SourceKind]) -> type[SourceKind]:
        SOURCE_KINDS.add(name, cls())
        return cls
    return add


def resolve_source(text: str) -> Source:
    """The source `text` names (not an artifact directory: callers check for those first)."""
    for name in SOURCE_KINDS:
        kind = SOURCE_KINDS.get(name)
        if kind.claims(text):
            return kind.resolve(text)
    close = _close_names(text)
    raise UnknownNameError(f"{text} is neither an artifact directory, a zoo or torchvision model name{close}, "
                           "a file.py:function / module:function, a .pt2 nor an .onnx file "
                           "(list names with `zoodeploy models list --all`)")


def _close_names(text: str) -> str:
    import difflib
    names = list(dict.fromkeys([*_zoo_names(), *torchvision_names()]))  # zoo names are torchvision names too
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _zoo_names() -> list[str]:
    from zoodeploy.models.zoo import list_models
    return list_models()


def torchvision_names() -> list[str]:
    """torchvision's classification models (not detection, segmentation, video, optical flow)."""
    import torchvision
    return torchvision.models.list_models(module=torchvision.models)


def _file_claims(text: str, suffix: str) -> bool:
    return text.lower().endswith(suffix)


def _existing(text: str, what: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise SourceError(f"{what} {text} does not exist")
    return path.resolve()


# ---- zoo and torchvision names -------------------------------------------------------------


@_kind("zoo")
class ZooKind(SourceKind):
    def claims(self, text: str) -> bool:
        return text in _zoo_names()

    def resolve(self, text: str) -> Source:
        from zoodeploy.models.zoo import get_spec
        spec = get_spec(text)
        labels = None
        if spec.weights_enum:
            import torchvision
            labels = tuple(torchvision.models.get_weight(spec.weights_enum).meta["categories"])
        return Source("zoo", spec.name, spec.name, labels, spec.preprocessing)

    def module(self, source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
        from zoodeploy.models.zoo import build_model
        weights = IMAGENET if weights is None else weights
        n = num_classes or 1000
        return build_model(source.name, num_classes=n, weights=None if weights == NO_WEIGHTS else weights)

    def rebuild(self, spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
        from zoodeploy.models.zoo import build_model
        return build_model(spec.ref, num_classes=num_classes, weights=str(checkpoint))


@_kind("torchvision")
class TorchvisionKind(SourceKind):
    """Any torchvision classification model, with its weight enum's preprocessing and categories."""

    def claims(self, text: str) -> bool:
        return text in torchvision_names()

    def resolve(self, text: str) -> Source:
        enum = _default_weights(text)
        return Source("torchvision", text, text, tuple(enum.meta["categories"]), weights_preprocessing(enum))

    def module(self, source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
        import torchvision.models as tvm
        weights = IMAGENET if weights is None else weights
        if weights == IMAGENET:
            return _imagenet_module(source.name)
        if weights == NO_WEIGHTS:
            return tvm.get_model(source.name, num_classes=num_classes or 1000)
        from zoodeploy.models.weights import load_state, read_state_dict
        state = read_state_dict(Path(weights))
        model = tvm.get_model(source.name, num_classes=head_classes(state) or num_classes or 1000)
        return load_state(model, state, Path(weights), source.name)

    def rebuild(self, spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
        import torchvision.models as tvm
        from zoodeploy.models.weights import load_state, read_state_dict
        return load_state(tvm.get_model(spec.ref, num_classes=num_classes), read_state_dict(checkpoint),
                          checkpoint, spec.ref)


def _default_weights(name: str):
    import torchvision.models as tvm
    return tvm.get_model_weights(name).DEFAULT


def weights_preprocessing(enum) -> Preprocessing:
    """A torchvision weight enum's ImageClassification transform as typed preprocessing."""
    t = enum.transforms()
    return Preprocessing(input_size=int(t.crop_size[0]), resize=int(t.resize_size[0]), mean=tuple(t.mean),
                         std=tuple(t.std), interpolation=t.interpolation.value)


def _imagenet_module(name: str) -> nn.Module:
    """torchvision's DEFAULT weights for `name`: downloaded once into the hub cache, read from there."""
    import torchvision.models as tvm
    from zoodeploy.models.weights import _download, _first_line
    from zoodeploy.errors import WeightsError
    enum = _default_weights(name)
    path = Path(torch.hub.get_dir()) / "checkpoints" / enum.url.rsplit("/", 1)[-1]
    if not path.is_file():
        _download(enum.url, path, progress=False)  # offline: one line naming where to put the file
    try:
        return tvm.get_model(name, weights=enum)
    except Exception as e:  # noqa: BLE001 - the file is the one thing here a user can fix
        raise WeightsError(f"the {enum} weights at {path} cannot be loaded ({_first_line(e)}); "
                           "delete the file to download it again") from None


def head_classes(state: dict[str, torch.Tensor]) -> int | None:
    """The class count of a state_dict's final layer (its last 2-D or 4-D weight)."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() in (2, 4)]
    return int(weights[-1].shape[0]) if weights else None


# ---- a Python callable ---------------------------------------------------------------------

_CALLABLE = re.compile(r"^(?P<target>[^:]+\.py|[A-Za-z_][\w.]*):(?P<func>[A-Za-z_]\w*)$")


@_kind("callable")
class CallableKind(SourceKind):
    """`path/to/file.py:function` or `package.module:function`, returning an nn.Module."""

    def claims(self, text: str) -> bool:
        return _CALLABLE.match(text) is not None

    def resolve(self, text: str) -> Source:
        m = _CALLABLE.match(text)
        target, func = m["target"], m["func"]
        if target.endswith(".py"):
            target = str(_existing(target, "Python file"))
        return Source("callable", f"{target}:{func}", func)

    def module(self, source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
        model = call_model(source.ref)
        if weights in (None, NO_WEIGHTS):
            return model
        if weights == IMAGENET:
            raise SourceError(f"{source.ref}: --weights imagenet is for zoo and torchvision names; pass the path "
                              "of a checkpoint for your module")
        from zoodeploy.models.weights import load_state, read_state_dict
        return load_state(model, read_state_dict(Path(weights)), Path(weights), source.name)

    def rebuild(self, spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
        from zoodeploy.models.weights import load_state, read_state_dict
        return load_state(call_model(spec.ref), read_state_dict(checkpoint), checkpoint, spec.ref)


def call_model(ref: str) -> nn.Module:
    """Import `ref`'s function and call it (this runs the user's code); it must return an nn.Module."""
    target, _, func = ref.rpartition(":")
    module = _import(target, ref)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise SourceError(f"{ref}: {target} has no function {func!r}")
    try:
        model = fn()
    except Exception as e:  # noqa: BLE001 - the user's code can fail any way; say how in one line
        raise SourceError(f"{ref} raised {type(e).__name__}: {' '.join(str(e).split())[:160]}") from None
    if not isinstance(model, nn.Module):
        raise SourceError(f"{ref} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _import(target: str, ref: str):
    try:
        if target.endswith(".py"):
            name = f"zoodeploy_user_{abs(hash(target)):x}"
            if name in sys.modules:
                return sys.modules[name]
            spec = importlib.util.spec_from_file_location(name, target)
            if spec is None or spec.loader is None:
                raise SourceError(f"{ref}: {target} cannot be imported as a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            return module
        return importlib.import_module(target)
    except ZoodeployError:
        raise
    except FileNotFoundError:
        raise SourceError(f"{ref}: {target} does not exist") from None
    except ModuleNotFoundError as e:
        raise SourceError(f"{ref}: cannot import {target} ({e})") from None
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"{ref}: importing {target} raised {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:160]}") from None


# ---- files: an exported program, an ONNX model ----------------------------------------------


@_kind("exported-program")
class ProgramKind(SourceKind):
    def claims(self, text: str) -> bool:
        return _file_claims(text, ".pt2")

    def resolve(self, text: str) -> Source:
        path = _existing(text, "exported program")
        return Source("exported-program", str(path), path.stem, input_size=_program_input_size(path))

    def module(self, source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
        if weights not in (None, NO_WEIGHTS):
            raise SourceError(f"{source.ref}: an exported program carries its weights; drop --weights")
        return _load_program(Path(source.ref))

    def rebuild(self, spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
        return _load_program(checkpoint)


def _load_program(path: Path) -> nn.Module:
    try:
        return _Program(load_program(path))
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"{path} is not a loadable torch.export program (.pt2): {gist(e)}") from None


class _Program(nn.Module):
    """An exported program as an ordinary module: its unlifted module refuses train()/eval() (a
    program is captured in one mode), so it is held outside the module tree those calls walk."""

    def __init__(self, program: nn.Module):
        super().__init__()
        object.__setattr__(self, "program", program)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def _program_input_size(path: Path) -> int | None:
    """H = W of the program's one image input when it is fixed (else None)."""
    try:
        with open(path, "rb") as f:
            program = torch.export.load(f)
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"{path} is not a loadable torch.export program (.pt2): {gist(e)}") from None
    inputs = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    if len(inputs) != 1:
        raise SourceError(f"{path} takes {len(inputs)} inputs; an image classifier takes one (N, 3, H, W)")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == inputs[0])
    shape = list(node.meta["val"].shape)
    if len(shape) != 4 or shape[1] != 3:
        raise SourceError(f"{path}: its input has shape {shape}; an image classifier takes (N, 3, H, W)")
    h, w = shape[2], shape[3]
    return int(h) if isinstance(h, int) and h == w else None


@_kind("onnx")
class OnnxKind(SourceKind):
    """An ONNX classifier with one (N, 3, S, S) float input; zoodeploy's metadata used when present."""

    def claims(self, text: str) -> bool:
        return _file_claims(text, ".onnx")

    def resolve(self, text: str) -> Source:
        from zoodeploy.onnx_graph import graph_io, load_onnx, onnx_metadata
        path = _existing(text, "ONNX model")
        model = load_onnx(path)
        io = graph_io(model, path)
        meta = onnx_metadata(model)
        if meta:
            return Source("onnx", str(path), meta.get("name", path.stem), tuple(meta["labels"]),
                          Preprocessing.from_dict(meta["preprocessing"]), io.input_size)
        return Source("onnx", str(path), path.stem, input_size=io.input_size)


# ---- labels and preprocessing ---------------------------------------------------------------


def read_labels(spec: str) -> list[str]:
    """`imagenet` (torchvision's 1,000 categories, offline) or a file: one label a line, or a JSON list."""
    if spec == IMAGENET:
        import torchvision.models as tvm
        return list(tvm.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
    path = Path(spec)
    if not path.is_file():
        raise SourceError(f"--labels {spec}: no such file; pass `imagenet` or a file (one label a line, "
                          "or a JSON list)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("["):
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as e:
            raise SourceError(f"--labels {spec} is not a valid JSON list ({e.msg}, line {e.lineno})") from None
        if not all(isinstance(x, str) for x in labels):
            raise SourceError(f"--labels {spec}: a JSON labels file is a list of strings")
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels or len(set(labels)) != len(labels):
        raise SourceError(f"--labels {spec}: need at least one label and no duplicates "
                          f"({len(labels)} labels, {len(labels) - len(set(labels))} repeated)")
    return labels


_PREP_KEYS = {"resize": "resize", "crop": "input_size", "input_size": "input_size", "mean": "mean",
              "std": "std", "interpolation": "interpolation"}


def parse_preprocessing(spec: str | None, default: Preprocessing) -> Preprocessing:
    """`resize=256,crop=224,interpolation=bicubic,mean=R,G,B,std=R,G,B`, or a JSON file of the
    same keys, over `default`. A crop without a resize keeps the default's crop fraction."""
    if spec is None:
        return default
    fields = _prep_json(spec) if spec.endswith(".json") or Path(spec).is_file() else _prep_text(spec)
    unknown = sorted(set(fields) - set(_PREP_KEYS))
    if unknown:
        raise SourceError(f"--preprocessing: unknown key(s) {', '.join(unknown)}; use {', '.join(_PREP_KEYS)}")
    values = {_PREP_KEYS[k]: v for k, v in fields.items()}
    try:
        for key in ("resize", "input_size"):
            if key in values:
                values[key] = int(values[key])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(x) for x in values[key])
                if len(values[key]) != 3:
                    raise ValueError(f"{key} needs 3 values (R,G,B)")
        if "input_size" in values and "resize" not in values:
            values["resize"] = max(values["input_size"],
                                   round(values["input_size"] * default.resize / default.input_size))
        return replace(default, **values)
    except (TypeError, ValueError) as e:
        raise SourceError(f"--preprocessing {spec!r}: {e}") from None


def _prep_text(spec: str) -> dict[str, object]:
    fields: dict[str, list[str]] = {}
    key = None
    for token in spec.split(","):
        token = token.strip()
        if "=" in token:
            key, _, value = token.partition("=")
            key = key.strip()
            fields[key] = [value.strip()]
        elif key in ("mean", "std") and token:
            fields[key].append(token)
        else:
            raise SourceError(f"--preprocessing {spec!r}: {token!r} is not KEY=VALUE; e.g. "
                              "resize=256,crop=224,interpolation=bilinear,mean=0.485,0.456,0.406,std=0.229,0.224,0.225")
    return {k: (v if k in ("mean", "std") else v[0]) for k, v in fields.items()}


def _prep_json(spec: str) -> dict[str, object]:
    try:
        fields = json.loads(Path(spec).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SourceError(f"--preprocessing {spec}: not a readable JSON file ({e})") from None
    if not isinstance(fields, dict):
        raise SourceError(f"--preprocessing {spec}: a JSON object of resize, crop, interpolation, mean, std")
    return fields


# ---- making an artifact ---------------------------------------------------------------------


@dataclass
class SourceConfig:
    """What a model that needs no training is deployed from: its source, labels, preprocessing, data."""

    source: str
    weights: str | None = None  # None: the kind's default (imagenet for names); a path; `none`
    labels: str | None = None  # `imagenet` or a file; None: the model's own, else the data's classes
    preprocessing: str | None = None  # a spec or a JSON file; None: the source's own, else ImageNet's
    input_size: int | None = None
    calib_data: str | None = None  # any folder of images (or an ImageFolder, or digits)
    eval_data: str | None = None  # an ImageFolder (classes matched by name) or a folder of images
    seed: int = 0

    @property
    def separate_calibration(self) -> str | None:
        """The calibration folder when it is not the folder the card's splits come from."""
        if self.calib_data and self.eval_data and _same_place(self.calib_data, self.eval_data) is False:
            return self.calib_data
        return None


def _same_place(a: str, b: str) -> bool:
    if "digits" in (a, b):
        return a == b
    return Path(a).resolve() == Path(b).resolve()


def make_artifact(cfg: SourceConfig, out: Path, *, source: Source | None = None) -> ModelCard:
    """Write `cfg`'s model into the (new, empty) directory `out`: card plus checkpoint, program or
    ONNX file. Every check (outputs, labels, preprocessing, data) runs before anything is written."""
    source = source or resolve_source(cfg.source)
    given = read_labels(cfg.labels) if cfg.labels else None
    model = source_module(source, cfg.weights, len(given) if given else None) if source.has_module else None
    prep = _preprocessing(cfg, source)
    classes = output_classes(model, prep.input_size, source) if model is not None else _onnx_classes(source)
    pretrained = source.kind in ("onnx", "exported-program") or cfg.weights in (None, IMAGENET)
    own = list(source.labels) if pretrained and source.labels and len(source.labels) == classes else None
    splits = data_splits(cfg, given or own)
    labels = given or own or (splits.labels if splits and splits.spec.labelled else None) \
        or [f"class_{i}" for i in range(classes)]
    if len(labels) != classes:
        where = f"--labels {cfg.labels}" if given else f"the class folders of {splits.spec.source}"
        raise SourceError(f"{source.name} outputs {classes} classes but {where} names {len(labels)}; "
                          "pass labels for every output")
    if splits is not None and splits.spec.source == "digits" and cfg.preprocessing is None \
            and source.preprocessing is None:
        prep = digits_preprocessing(prep.input_size)
    card = ModelCard(name=source.name, num_classes=classes, labels=labels, preprocessing=prep,
                     weights=_weights_text(source, cfg.weights), data=splits.spec if splits else None,
                     source=source_spec(source, cfg.weights), provenance=provenance())
    _write_model(out, card, source, model)
    return card


def source_module(source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
    return SOURCE_KINDS.get(source.kind).module(source, weights, num_classes).eval()


def _preprocessing(cfg: SourceConfig, source: Source) -> Preprocessing:
    size = cfg.input_size or source.input_size
    default = source.preprocessing or Preprocessing.for_size(size or 224)
    if size and size != default.input_size:
        default = replace(default, input_size=size, resize=max(size, round(size * default.resize / default.input_size)))
    prep = parse_preprocessing(cfg.preprocessing, default)
    if source.input_size and prep.input_size != source.input_size:
        raise SourceError(f"{source.ref} takes {source.input_size}px images; --preprocessing crops "
                          f"{prep.input_size}px")
    return prep


def output_classes(model: nn.Module, size: int, source: Source) -> int:
    """The class count of `model`, checked: its output on (2, 3, size, size) must be (2, classes)."""
    try:
        with torch.inference_mode():
            out = model(torch.zeros(2, 3, size, size))
    except Exception as e:  # noqa: BLE001 - a model that cannot run on images fails in its own way
        raise SourceError(f"{source.name} does not run on a (2, 3, {size}, {size}) image batch: {gist(e)}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SourceError(f"{source.name} returns {shape} for a batch of 2 images; an image classifier "
                          "returns logits of shape (N, classes)")
    return int(out.shape[1])


def _onnx_classes(source: Source) -> int:
    from zoodeploy.onnx_graph import graph_io, load_onnx
    return graph_io(load_onnx(Path(source.ref)), Path(source.ref)).classes


def data_splits(cfg: SourceConfig, labels: list[str] | None) -> Splits | None:
    """The card's data: one folder split deterministically (calibration = train, evaluation = test),
    or, beside a separate --calib-data folder, the --eval-data folder as val + test only."""
    if cfg.eval_data and cfg.separate_calibration:
        return _load(cfg.eval_data, labels, cfg.seed, EVAL_ONLY)
    folder = cfg.eval_data or cfg.calib_data
    return None if folder is None else _load(folder, labels, cfg.seed, (0.15, 0.2))


def _load(folder: str, labels: list[str] | None, seed: int, fractions: tuple[float, float]) -> Splits:
    return load_splits(folder, labels=labels, seed=seed, val_fraction=fractions[0], test_fraction=fractions[1])


def _weights_text(source: Source, weights: str | None) -> str:
    if source.kind in ("onnx", "exported-program"):
        return f"{source.kind} {Path(source.ref).name}"
    if weights is None:
        return "as returned by the callable" if source.kind == "callable" else IMAGENET
    return "random-init" if weights == NO_WEIGHTS else weights


def source_spec(source: Source, weights: str | None) -> SourceSpec:
    path = Path(weights) if weights not in (None, NO_WEIGHTS, IMAGENET) else None
    file_sha = sha256_file(source.ref) if source.kind in ("onnx", "exported-program") else None
    return SourceSpec(kind=source.kind, ref=source.ref, weights=str(path.resolve()) if path else weights,
                      weights_sha256=sha256_file(path) if path else None, file_sha256=file_sha)


def _write_model(out: Path, card: ModelCard, source: Source, model: nn.Module | None) -> None:
    if source.kind == "onnx":
        from zoodeploy.recipes import CopyRecipe
        shutil.copyfile(source.ref, out / FP32_ONNX)
        from zoodeploy.onnx_graph import graph_io, load_onnx
        io = graph_io(load_onnx(out / FP32_ONNX), Path(source.ref))
        card.input_name, card.output_name = io.input_name, io.output_name
        card.variants["fp32"] = Variant(name="fp32", file=FP32_ONNX, sha256=sha256_file(out / FP32_ONNX),
                                        precision="fp32", runtime="onnxruntime",
                                        made_by=f"copied from the ONNX model {source.ref}",
                                        recipe=CopyRecipe(source=source.ref))
        card.provenance.source_onnx = source.ref
        card.provenance.card_from = "onnx metadata" if source.labels else "graph + data"
    elif source.kind == "exported-program":
        shutil.copyfile(source.ref, out / PROGRAM_FILE)
        card.checkpoint, card.checkpoint_sha256 = PROGRAM_FILE, sha256_file(out / PROGRAM_FILE)
    else:
        torch.save(model.state_dict(), out / CHECKPOINT_FILE)
        card.checkpoint, card.checkpoint_sha256 = CHECKPOINT_FILE, sha256_file(out / CHECKPOINT_FILE)
    save_card(out, card)


def rebuild_module(spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
    """An artifact's module from its recorded source and checkpoint (models/artifact.load_model)."""
    return SOURCE_KINDS.get(spec.kind).rebuild(spec, checkpoint, num_classes)
