"""Image preprocessing as typed data, and the one function that applies it.

This module needs only numpy and Pillow: edge bundles carry this very file, so a device
preprocesses exactly as training, evaluation and serving do.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

try:  # inside the package: part of the one error hierarchy
    from zoodeploy.errors import ImageError
except ImportError:  # inside an edge bundle, where zoodeploy is not installed
    class ImageError(ValueError):
        """An image that cannot be decoded or is too large."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MAX_PIXELS = 40_000_000
_INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to `resize`, centre-crop `input_size`, scale to [0,1], normalize."""

    input_size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.input_size < 1 or self.resize < self.input_size:
            raise ValueError(f"need 1 <= input_size <= resize, got {self.input_size}, {self.resize}")
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATION)}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def for_size(cls, input_size: int, crop_fraction: float = 0.875, **kw) -> Preprocessing:
        """ImageNet-style preprocessing at another input size (resize = size / crop fraction)."""
        return cls(input_size=input_size, resize=round(input_size / crop_fraction), **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image, refusing corrupt data and decompression bombs."""
    name = "image" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes) and not source:
        raise ImageError("empty image data: send the image file's bytes")
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"{name} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
        img.load()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name} is not a readable image ({e}); send a PNG, JPEG or other "
                         "format Pillow decodes") from None
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F) to 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def preprocess(img: Image.Image, p: Preprocessing) -> np.ndarray:
    """One PIL image -> float32 array (3, input_size, input_size)."""
    return normalize(crop(img, p), p)


def preprocess_batch(images: list[Image.Image], p: Preprocessing) -> np.ndarray:
    """Several PIL images -> float32 array (N, 3, input_size, input_size)."""
    if not images:
        return np.zeros((0, 3, p.input_size, p.input_size), np.float32)
    return normalize(np.stack([crop(im, p) for im in images]), p)


def crop(img: Image.Image, p: Preprocessing) -> np.ndarray:
    """The pixels the model sees, before scaling: uint8 (input_size, input_size, 3), RGB."""
    img = to_rgb(img)
    w, h = img.size
    scale = p.resize / min(w, h)
    size = (max(p.resize, round(w * scale)), max(p.resize, round(h * scale)))
    img = img.resize(size, _INTERPOLATION[p.interpolation])
    left = (size[0] - p.input_size) // 2
    top = (size[1] - p.input_size) // 2
    return np.asarray(img.crop((left, top, left + p.input_size, top + p.input_size)))


def normalize(pixels: np.ndarray, p: Preprocessing) -> np.ndarray:
    """uint8 crops (..., H, W, 3) -> float32 (..., 3, H, W), scaled to [0,1] and normalized.

    Element by element, so one image or a stack of them gives the same bits; on a stack it runs
    once per batch instead of once per image (32 px digits: a third of the per-image time)."""
    arr = pixels.astype(np.float32) / 255.0
    arr = (arr - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(arr, -1, -3))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
