"""The card's essentials inside an ONNX file's metadata_props: a lone .onnx describes itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from zoodeploy.card import ONNX_METADATA_KEY, ModelCard
from zoodeploy.errors import ArtifactError


def set_card_metadata(model: onnx.ModelProto, card: ModelCard, **extra: Any) -> onnx.ModelProto:
    """Write the card essentials (plus e.g. the variant name) into `model.metadata_props`."""
    props = {p.key: p.value for p in model.metadata_props}
    props[ONNX_METADATA_KEY] = json.dumps({**card.essentials(), **extra}, sort_keys=True)
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    return model


def read_card_metadata(path: str | Path) -> dict[str, Any] | None:
    """The essentials stored in an ONNX file, or None when it has none (not made by zoodeploy)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(e).__name__}); "
                            "re-export it with `zoodeploy export`") from None
    for p in model.metadata_props:
        if p.key == ONNX_METADATA_KEY:
            return json.loads(p.value)
    return None
