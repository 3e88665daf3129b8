"""Pretrained weights: torchvision's ImageNet weights, or a local checkpoint file.

Every failure a user can fix (offline, missing or corrupt file, a checkpoint for another
architecture or class count) is a `WeightsError` with a one-line message that says how.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from zoodeploy.errors import WeightsError
from zoodeploy.models.facts import IMAGENET
from zoodeploy.models.spec import ModelSpec, replace_head

IMAGENET_CLASSES = 1000
_SHOWN_KEYS = 3  # mismatched keys named in an error; enough to see the pattern


def load_weights(spec: ModelSpec, weights: str | Path, *, num_classes: int = 1000,
                 progress: bool = True) -> nn.Module:
    """Build `spec` with `weights`: "imagenet" (torchvision's enum) or a checkpoint path."""
    if str(weights) == IMAGENET:
        return load_imagenet(spec, num_classes=num_classes, progress=progress)
    return load_checkpoint(spec, Path(weights), num_classes=num_classes)


def hub_checkpoint_path(weights_enum: str) -> Path:
    """Where torch.hub keeps (and looks for) the file of a torchvision weight enum."""
    url = tvm.get_weight(weights_enum).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_imagenet(spec: ModelSpec, *, num_classes: int = 1000, progress: bool = True) -> nn.Module:
    """torchvision's ImageNet weights for `spec`; downloaded once, then read from the hub cache.

    For another class count the head (and any auxiliary heads) is replaced by a fresh one.
    """
    if spec.weights_enum is None:
        raise WeightsError(f"{spec.name} has no ImageNet weights in torchvision; train it "
                           "(`zoodeploy train`) or pass a checkpoint path as weights")
    enum = tvm.get_weight(spec.weights_enum)
    path = hub_checkpoint_path(spec.weights_enum)
    if not path.is_file():
        _download(enum.url, path, progress)
    try:
        # torchvision's own loading: it knows each file's quirks (old DenseNet key names)
        model = spec.builder(num_classes=IMAGENET_CLASSES, weights=enum, progress=progress)
    except Exception as e:  # noqa: BLE001 - the file is the one thing here a user can fix
        raise WeightsError(f"the {spec.weights_enum} weights at {path} cannot be loaded "
                           f"({_first_line(e)}); delete the file to download it again") from None
    return model if num_classes == IMAGENET_CLASSES else replace_head(model, spec, num_classes)


def _download(url: str, path: Path, progress: bool) -> None:
    filename = path.name
    match = torch.hub.HASH_REGEX.search(filename)  # torchvision names files <name>-<sha256 prefix>
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None,
                                       progress=progress)
    except OSError as e:  # URLError and socket errors are OSErrors
        reason = getattr(e, "reason", None) or e
        raise WeightsError(f"cannot download {url} ({reason}; offline?): download it and "
                           f"place it at {path}") from None
    except RuntimeError as e:  # hash mismatch; torch.hub has removed the partial file
        raise WeightsError(f"the download of {filename} is corrupt ({_first_line(e)}); "
                           "retry") from None


def load_checkpoint(spec: ModelSpec, path: Path, *, num_classes: int) -> nn.Module:
    """Build `spec` for `num_classes` and load a state_dict (or a dict holding one) from `path`."""
    state = read_state_dict(path)
    model = spec.builder(num_classes=num_classes)
    _check_shapes(spec, model, state, path, num_classes)
    result = model.load_state_dict(state, strict=False)
    # auxiliary classifiers only serve training; a state_dict saved without them (torchvision
    # drops GoogLeNet's when loading its weights) still makes a complete inference model
    aux = tuple(head.split(".")[0] + "." for head in spec.aux_heads)
    missing = [k for k in result.missing_keys if not (aux and k.startswith(aux))]
    if missing or result.unexpected_keys:
        raise WeightsError(f"{path} does not fit {spec.name}: "
                           + _key_report(missing, result.unexpected_keys))
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights-only checkpoint: a state_dict, or a dict with a "state_dict"/"model" one."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass \"imagenet\" or the path "
                           "of a checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a foreign file can fail the unpickler any way
        raise WeightsError(f"{path} is not a readable weights-only PyTorch checkpoint "
                           f"({_first_line(e)}); save it with torch.save(model.state_dict())"
                           ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} holds no state_dict (a dict of tensors); save it with "
                           "torch.save(model.state_dict())")
    return obj


def load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> nn.Module:
    """Load a state_dict into any module (not a zoo entry), strictly, with one-line errors."""
    expected = model.state_dict()
    wrong = [(k, list(v.shape), list(expected[k].shape))
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if wrong:
        shapes = ", ".join(f"{k} {got} vs {want}" for k, got, want in wrong[:_SHOWN_KEYS])
        more = f" and {len(wrong) - _SHOWN_KEYS} more" if len(wrong) > _SHOWN_KEYS else ""
        raise WeightsError(f"{path} does not fit {name}: shapes differ (checkpoint vs model): {shapes}{more}")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(f"{path} does not fit {name}: "
                           + _key_report(result.missing_keys, result.unexpected_keys))
    return model


def checkpoint_num_classes(spec: ModelSpec, state: dict[str, torch.Tensor]) -> int | None:
    """The class count of a state_dict's head, or None when it has no such head."""
    weight = state.get(f"{spec.head}.weight")
    return None if weight is None else int(weight.shape[0])


def _check_shapes(spec: ModelSpec, model: nn.Module, state: dict[str, torch.Tensor],
                  path: Path, num_classes: int) -> None:
    # load_state_dict names every mismatch in a long multi-line error; one line is kinder
    expected = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(expected[k].shape))
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if not wrong:
        return
    found = checkpoint_num_classes(spec, state)
    classes = (f"checkpoint has {found} classes, asked for {num_classes}; "
               if found is not None and found != num_classes else "")
    shapes = ", ".join(f"{k} {list(got)} vs {list(want)}" for k, got, want in wrong[:_SHOWN_KEYS])
    more = f" and {len(wrong) - _SHOWN_KEYS} more" if len(wrong) > _SHOWN_KEYS else ""
    hint = "" if classes else " (is it a checkpoint of another architecture?)"
    raise WeightsError(f"{path} does not fit {spec.name}: {classes}shapes differ "
                       f"(checkpoint vs model): {shapes}{more}{hint}")


def _key_report(missing: list[str], unexpected: list[str]) -> str:
    def some(keys: list[str]) -> str:
        more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
        return ", ".join(keys[:_SHOWN_KEYS]) + more
    parts = [f"{len(missing)} missing keys ({some(missing)})" if missing else "",
             f"{len(unexpected)} unexpected keys ({some(unexpected)})" if unexpected else ""]
    return "; ".join(p for p in parts if p) + " (is it a checkpoint of another architecture?)"


def _first_line(e: BaseException) -> str:
    """The gist of an exception from deep inside torch: its first sentence, kept short."""
    text = " ".join(str(e).split()).split(". ")[0]
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # torch colours some of its messages
    gist = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return gist if len(gist) <= 120 else gist[:117] + "..."
