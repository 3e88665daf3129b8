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
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from zoodeploy.card import CHECKPOINT_FILE, ModelCard, SourceSpec, Variant, provenance, save_card
from zoodeploy.errors import SourceError, UnknownNameError, ZoodeployError
from zoodeploy.fileio import sha256_file
from zoodeploy.models.data import Splits, class_folders, load_splits
from zoodeploy.models.saved_program import gist, load_program
from zoodeploy.models.weights import IMAGENET
from zoodeploy.preprocess import Preprocessing
from zoodeploy.registry import Registry

if TYPE_CHECKING:
    from zoodeploy.onnx_graph import GraphIO

NO_WEIGHTS = "none"
FOLDERS = "folders"  # --labels folders: the evaluation folder's class folders, sorted, as outputs 0..N-1
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
    labels_from: str | None = None  # where its own labels were found
    graph: GraphIO | None = None  # an ONNX source's input and output

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
    from zoodeploy.models.facts import did_you_mean
    return did_you_mean(text, list(dict.fromkeys([*_zoo_names(), *torchvision_names()])))  # zoo names may be both


def _zoo_names() -> list[str]:
    from zoodeploy.models.facts import zoo_facts
    return list(zoo_facts())  # the registry's names, without importing torch


def torchvision_names() -> list[str]:
    """torchvision's classification models (not detection, segmentation, video, optical flow): the
    stored catalogue when it is the installed version's (a mistyped name answers without importing
    torchvision: 8 s on 2 cores), else torchvision's own list."""
    from zoodeploy.models.facts import torchvision_catalogue
    stored = torchvision_catalogue()
    if stored is not None:
        return list(stored)
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
        return Source("zoo", spec.name, spec.name, labels, spec.preprocessing,
                      labels_from=f"torchvision weights {spec.weights_enum}" if labels else None)

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
        return Source("torchvision", text, text, tuple(enum.meta["categories"]), weights_preprocessing(enum),
                      labels_from=f"torchvision weights {enum}")

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
    return Preprocessing(size=int(t.crop_size[0]), resize=int(t.resize_size[0]), mean=tuple(t.mean),
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
        from zoodeploy.onnx_graph import graph_io, load_onnx, model_labels, onnx_metadata
        path = _existing(text, "ONNX model")
        model = load_onnx(path)
        io = graph_io(model, path)
        meta = onnx_metadata(model)
        labels, labels_from = model_labels(model, io.classes) or (None, None)
        prep = Preprocessing.from_dict(meta["preprocessing"]) if meta else None
        return Source("onnx", str(path), meta.get("name", path.stem) if meta else path.stem,
                      tuple(labels) if labels else None, prep, io.input_size, labels_from, io)


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


# --preprocessing keys -> Preprocessing fields (crop and input_size: a square size, as before H x W)
_PREP_KEYS = {"size": "size", "crop": "size", "input_size": "size", "resize": "resize", "mode": "mode",
              "pad": "pad", "align": "align", "interpolation": "interpolation", "channels": "channels",
              "scale": "scale", "mean": "mean", "std": "std", "layout": "layout", "dtype": "dtype"}
_MULTI = ("mean", "std", "pad")  # keys whose value is a comma-separated list
_PREP_EXAMPLE = ("size=224 or size=32x96,resize=256,mode=crop|squash|pad,pad=0,0,0,align=center|topleft,"
                 "interpolation=bilinear|bicubic|nearest|lanczos,channels=rgb|bgr|gray,scale=1|255,"
                 "mean=R,G,B,std=R,G,B,layout=nchw|nhwc,dtype=float32|uint8")


def preprocessing_fields(spec: str | None) -> dict[str, object]:
    """The fields a --preprocessing spec (KEY=VALUE,... or a JSON file) sets, typed, not yet applied."""
    if spec is None:
        return {}
    raw = _prep_json(spec) if spec.endswith(".json") or Path(spec).is_file() else _prep_text(spec)
    unknown = sorted(set(raw) - set(_PREP_KEYS))
    if unknown:
        raise SourceError(f"--preprocessing: unknown key(s) {', '.join(unknown)}; use {', '.join(_PREP_KEYS)}")
    if len({_PREP_KEYS[k] for k in raw}) != len(raw):
        raise SourceError(f"--preprocessing {spec!r}: size, crop and input_size are one setting; give one")
    try:
        return {_PREP_KEYS[k]: _typed(_PREP_KEYS[k], v) for k, v in raw.items()}
    except (TypeError, ValueError) as e:
        raise SourceError(f"--preprocessing {spec!r}: {e}") from None


def _typed(field: str, value: object) -> object:
    if field == "size":
        text = str(value).lower()
        parts = text.split("x") if isinstance(value, str) else (list(value) if isinstance(value, list) else [value])
        size = tuple(int(p) for p in parts)
        if len(size) not in (1, 2):
            raise ValueError(f"size is H or HxW, got {value!r}")
        return size * 2 if len(size) == 1 else size
    if field in ("resize", "scale"):
        return int(value)
    if field in ("mean", "std"):
        return tuple(float(x) for x in (value if isinstance(value, list) else [value]))
    if field == "pad":
        return tuple(int(x) for x in (value if isinstance(value, list) else [value]))
    return str(value).lower()


def parse_preprocessing(spec: str | None, default: Preprocessing) -> Preprocessing:
    """`--preprocessing` over `default`: any of the keys in `_PREP_KEYS`, or a JSON file of them.
    A size without a resize keeps the default's crop fraction; channels without mean / std convert
    the default's (gray: their average, bgr: reversed); dtype uint8 takes raw pixels (no mean / std)."""
    return apply_preprocessing(preprocessing_fields(spec), default, spec or "")


def apply_preprocessing(fields: dict[str, object], default: Preprocessing, spec: str = "") -> Preprocessing:
    values = dict(fields)
    try:
        base = default.at_size(values["size"]) if "size" in values and "resize" not in values else default
        channels = values.get("channels", base.channels)
        if channels != base.channels:
            for key in ("mean", "std"):
                if key not in values:
                    values[key] = _convert(getattr(base, key), base.channels, channels)
        if values.get("dtype", base.dtype) == "uint8":
            given = [k for k in ("mean", "std", "scale") if k in fields]
            if given:
                raise ValueError(f"dtype=uint8 feeds raw 0..255 pixels: drop {', '.join(given)}")
            n = 1 if channels == "gray" else 3
            values.update(mean=(0.0,) * n, std=(1.0,) * n, scale=255)
        return replace(base, **values)
    except (TypeError, ValueError) as e:
        raise SourceError(f"--preprocessing {spec!r}: {e}" if spec else f"preprocessing: {e}") from None


def _convert(values: tuple[float, ...], old: str, new: str) -> tuple[float, ...]:
    """Per-channel mean / std for another channel order or count."""
    if new == "gray":
        return (round(sum(values) / len(values), 6),)
    if old == "gray":
        return values * 3
    return tuple(reversed(values))  # rgb <-> bgr


def _prep_text(spec: str) -> dict[str, object]:
    fields: dict[str, list[str]] = {}
    key = None
    for token in spec.split(","):
        token = token.strip()
        if "=" in token:
            key, _, value = token.partition("=")
            key = key.strip()
            fields[key] = [value.strip()]
        elif key in _MULTI and token:
            fields[key].append(token)
        else:
            raise SourceError(f"--preprocessing {spec!r}: {token!r} is not KEY=VALUE; keys: {_PREP_EXAMPLE}")
    return {k: (v if k in _MULTI else v[0]) for k, v in fields.items()}


def _prep_json(spec: str) -> dict[str, object]:
    try:
        fields = json.loads(Path(spec).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SourceError(f"--preprocessing {spec}: not a readable JSON file ({e})") from None
    if not isinstance(fields, dict):
        raise SourceError(f"--preprocessing {spec}: a JSON object of {', '.join(_PREP_KEYS)}")
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
    name: str | None = None  # the card's (and the served model's) name; None: the source's own

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
    ONNX file. Every check (outputs, labels, preprocessing, data) runs before anything is written.

    Labels: --labels, else the model's own; class folders are matched to them by name, never taken
    in sorted order unless the user says so (`--labels folders`)."""
    source = source or resolve_source(cfg.source)
    given = read_labels(cfg.labels) if cfg.labels and cfg.labels != FOLDERS else None
    model = source_module(source, cfg.weights, len(given) if given else None) if source.has_module else None
    prep, prep_from = _preprocessing(cfg, source)
    classes = output_classes(model, prep, source) if model is not None else source.graph.classes
    pretrained = source.kind in ("onnx", "exported-program") or cfg.weights in (None, IMAGENET)
    own = list(source.labels) if pretrained and source.labels and len(source.labels) == classes \
        and cfg.labels != FOLDERS else None
    known, labels_source = (given, f"--labels {cfg.labels}") if given else \
        (own, source.labels_from or "the model's own") if own else (None, None)
    splits = data_splits(cfg, known, source.name)
    if known:
        labels = known
    elif splits is not None and splits.spec.labelled:
        labels = splits.labels
        labels_source = ("class folders in sorted order (--labels folders)" if cfg.labels == FOLDERS
                         else "the digits data set's classes 0-9")
    else:
        labels, labels_source = [f"class_{i}" for i in range(classes)], "none (class_<i>; name them with --labels)"
    if len(labels) != classes:
        where = f"--labels {cfg.labels}" if given else f"the class folders of {splits.spec.source}"
        raise SourceError(f"{source.name} outputs {classes} classes but {where} names {len(labels)}; "
                          "pass labels for every output")
    if splits is not None and splits.spec.source == "digits" and cfg.preprocessing is None \
            and source.preprocessing is None and prep.height == prep.width:
        prep = replace(prep, resize=prep.height)  # digits are tightly framed: scale to the size, no crop
        prep_from["resize"] = "digits (no crop)"
    card = ModelCard(name=cfg.name or source.name, num_classes=classes, labels=labels, labels_source=labels_source,
                     preprocessing=prep, preprocessing_from=prep_from, weights=_weights_text(source, cfg.weights),
                     data=splits.spec if splits else None, source=source_spec(source, cfg.weights),
                     provenance=provenance())
    _write_model(out, card, source, model)
    return card


def source_module(source: Source, weights: str | None, num_classes: int | None) -> nn.Module:
    return SOURCE_KINDS.get(source.kind).module(source, weights, num_classes).eval()


def _preprocessing(cfg: SourceConfig, source: Source) -> tuple[Preprocessing, dict[str, str]]:
    """The preprocessing in force, and where each value came from: the user (--preprocessing,
    --image-size), the model's input (an ONNX graph's channels, layout, dtype and fixed size), its own
    record (zoodeploy metadata, torchvision weights) or zoodeploy's default (ImageNet's). A value the
    model's input contradicts is refused."""
    user = preprocessing_fields(cfg.preprocessing)
    if cfg.input_size and "size" not in user:
        user["size"] = (cfg.input_size, cfg.input_size)
    own = {"onnx": "model metadata", "zoo": "zoo entry"}.get(source.kind, "torchvision weights")
    graph = source.graph
    fixed = graph.size if graph else ((source.input_size,) * 2 if source.input_size else None)
    base = source.preprocessing or Preprocessing.for_size(fixed or 224)  # the user's size: applied below
    origin = {f.name: (own if source.preprocessing else "default") for f in fields(Preprocessing)}
    facts: dict[str, object] = {}
    if graph is not None:
        colour = base.channels if base.channels != "gray" else "rgb"  # rgb or bgr: the graph cannot tell
        facts = {"layout": graph.layout, "dtype": graph.dtype, "channels": "gray" if graph.channels == 1 else colour}
    if fixed:
        facts["size"] = fixed
    elif graph is not None and "size" not in user:
        raise SourceError(f"{source.ref} takes images of any height and width (input {graph.input_name} "
                          f"has dynamic H, W): say the size it runs at with --preprocessing size=HxW")
    for key, value in facts.items():
        if key in user and _differs(key, user[key], value):
            raise SourceError(f"{source.ref}: its input takes {key} {_show(value)}, but --preprocessing says "
                              f"{_show(user[key])}; drop it or make it {_show(value)}")
    origin.update({k: "model input" for k in facts})
    changed = {k: v for k, v in facts.items() if _differs(k, getattr(base, k), v)}
    base = apply_preprocessing(changed, base)
    origin.update({"resize": "model input"} if "size" in changed else {})
    prep = apply_preprocessing(user, base, cfg.preprocessing or f"size={cfg.input_size}")
    origin.update({k: "user" for k in user})
    return prep, origin


def preprocessing_origin(origin: dict[str, str]) -> str:
    """`user: size, mode; model input: layout, dtype; default: the rest` from a card's record."""
    groups: dict[str, list[str]] = {}
    for key, where in origin.items():
        groups.setdefault(where, []).append(key)
    common = max(groups, key=lambda w: len(groups[w]), default=None)
    parts = [f"{w}: {', '.join(keys)}" for w, keys in groups.items() if w != common]
    return "; ".join(parts + ([f"{common}: the rest"] if common else []))


def _differs(key: str, a: object, b: object) -> bool:
    if key == "channels":  # rgb and bgr are both 3 channels: the graph cannot tell them apart
        return (a == "gray") != (b == "gray")
    return tuple(a) != tuple(b) if isinstance(a, tuple) else a != b


def _show(value: object) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def output_classes(model: nn.Module, prep: Preprocessing, source: Source) -> int:
    """The class count of `model`, checked: its output on a batch of 2 inputs must be (2, classes)."""
    shape = (2, *prep.input_shape)
    try:
        with torch.inference_mode():
            out = model(torch.zeros(shape, dtype=torch.uint8 if prep.dtype == "uint8" else torch.float32))
    except Exception as e:  # noqa: BLE001 - a model that cannot run on images fails in its own way
        raise SourceError(f"{source.name} does not run on a {shape} image batch: {gist(e)}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SourceError(f"{source.name} returns {shape} for a batch of 2 images; an image classifier "
                          "returns logits of shape (N, classes)")
    return int(out.shape[1])


def data_splits(cfg: SourceConfig, labels: list[str] | None, name: str = "the model") -> Splits | None:
    """The card's data: one folder split deterministically (calibration = train, evaluation = test),
    or, beside a separate --calib-data folder, the --eval-data folder as val + test only.

    --calib-data alone is a bag of images, read recursively (`digits` excepted: its classes are
    matched like an evaluation folder's); --eval-data is labelled only where its top-level folders are
    the model's labels (`labels`; None: the model names none)."""
    if cfg.labels == FOLDERS and not cfg.eval_data:
        raise SourceError("--labels folders names the outputs after the class folders of --eval-data; pass "
                          "--eval-data DIR (one folder per class)")
    if cfg.eval_data:
        fractions = EVAL_ONLY if cfg.separate_calibration else (0.15, 0.2)
        return _labelled_or_not(cfg.eval_data, labels, cfg, fractions, name)
    if cfg.calib_data is None:
        return None
    if cfg.calib_data == "digits":
        return _labelled_or_not("digits", labels, cfg, (0.15, 0.2), name)
    return _load(cfg.calib_data, labels, cfg.seed, (0.15, 0.2), images_only=True)


def _labelled_or_not(folder: str, labels: list[str] | None, cfg: SourceConfig, fractions: tuple[float, float],
                     name: str) -> Splits:
    """`folder` as an ImageFolder when its top-level folders are the model's labels (matched by name),
    as unlabelled images when none is; refused when only some are, or when the model names no labels
    (unless `--labels folders` says to take the folders in sorted order)."""
    folders = class_folders(folder)
    if not folders:
        return _load(folder, labels, cfg.seed, fractions, images_only=True)
    n, shown = len(folders), ", ".join(folders[:4]) + (f" and {len(folders) - 4} more" if len(folders) > 4 else "")
    if labels is None:
        if cfg.labels != FOLDERS and folder != "digits":
            raise SourceError(f"{folder} has {n} class folder(s) ({shown}) but {name} carries no labels to match "
                              "them to its outputs: pass --labels FILE (one label a line, in output order), or "
                              "--labels folders to take the folders in sorted order as outputs 0..N-1")
        splits = _load(folder, None, cfg.seed, fractions)
        splits.spec.labels_match = f"{n} folders taken in sorted order as the outputs"
        return splits
    known = set(labels)
    missing = [f for f in folders if f not in known]
    if len(missing) == n:
        splits = _load(folder, labels, cfg.seed, fractions, images_only=True)
        splits.spec.labels_match = f"0 of {n} folders match {name}'s labels: read as unlabelled images"
        return splits
    if missing:
        raise SourceError(f"{folder}: {n - len(missing)} of {n} folders match {name}'s labels, but "
                          f"{', '.join(missing[:4])} do not (labels e.g. {', '.join(labels[:4])}); rename or "
                          "remove those folders")
    splits = _load(folder, labels, cfg.seed, fractions)
    splits.spec.labels_match = f"{n} of {n} folders match {name}'s labels by name"
    return splits


def _load(folder: str, labels: list[str] | None, seed: int, fractions: tuple[float, float],
          images_only: bool = False) -> Splits:
    return load_splits(folder, labels=labels, seed=seed, val_fraction=fractions[0], test_fraction=fractions[1],
                       images_only=images_only)


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
        _write_onnx(out, card, source)
    elif source.kind == "exported-program":
        shutil.copyfile(source.ref, out / PROGRAM_FILE)
        card.checkpoint, card.checkpoint_sha256 = PROGRAM_FILE, sha256_file(out / PROGRAM_FILE)
    else:
        torch.save(model.state_dict(), out / CHECKPOINT_FILE)
        card.checkpoint, card.checkpoint_sha256 = CHECKPOINT_FILE, sha256_file(out / CHECKPOINT_FILE)
    save_card(out, card)


def _write_onnx(out: Path, card: ModelCard, source: Source) -> None:
    """The ONNX source as the artifact's fp32.onnx: copied, or with its dynamic H, W fixed at the size
    it is deployed at (the card records both)."""
    from zoodeploy.onnx_graph import fix_spatial_dims, load_onnx
    from zoodeploy.recipes import CopyRecipe
    io, made_by = source.graph, f"copied from the ONNX model {source.ref}"
    if io.size is None:
        import onnx
        size = card.preprocessing.size
        onnx.save(fix_spatial_dims(load_onnx(Path(source.ref)), io, size), str(out / FP32_ONNX))
        made_by += f", its dynamic height and width fixed at {size[0]}x{size[1]}"
    else:
        shutil.copyfile(source.ref, out / FP32_ONNX)
    card.input_name, card.output_name = io.input_name, io.output_name
    card.variants["fp32"] = Variant(name="fp32", file=FP32_ONNX, sha256=sha256_file(out / FP32_ONNX),
                                    precision="fp32", runtime="onnxruntime", made_by=made_by,
                                    recipe=CopyRecipe(source=source.ref))
    card.provenance.source_onnx = source.ref
    card.provenance.card_from = "onnx metadata" if source.labels else "graph + data"


def rebuild_module(spec: SourceSpec, checkpoint: Path, num_classes: int) -> nn.Module:
    """An artifact's module from its recorded source and checkpoint (models/artifact.load_model)."""
    return SOURCE_KINDS.get(spec.kind).rebuild(spec, checkpoint, num_classes)
