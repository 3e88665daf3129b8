"""Image preprocessing as typed data, and the one function that applies it.

This module needs only numpy and Pillow: edge bundles carry this very file, so a device
preprocesses exactly as training, evaluation and serving do.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, replace
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
_INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                  "lanczos": Image.LANCZOS}
MODES = ("crop", "squash", "pad")  # shorter side + centre crop; straight to H x W; fit inside and pad
ALIGNS = ("center", "topleft")  # where a padded image sits
CHANNELS = ("rgb", "bgr", "gray")
SCALES = (1, 255)  # the pixel range before mean / std: [0, 1] or [0, 255]
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("float32", "uint8")


def _one_of(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


@dataclass(frozen=True)
class Preprocessing:
    """The whole input contract of an image model, applied by `preprocess` and nothing else.

    Geometry: `mode` crop resizes the shorter side to `resize` and centre-crops `size` (H, W); squash
    resizes straight to H x W; pad fits the image inside H x W, keeping its ratio, and fills the rest
    with `pad` (R, G, B), placed by `align`. Pixels: `channels` rgb / bgr / gray (one channel), divided
    by 255 when `scale` is 1, then (x - mean) / std per channel, in the model's channel order (one
    value each for gray). The tensor: `layout` nchw / nhwc, `dtype` float32, or uint8 (raw 0..255
    pixels: no scale, mean or std)."""

    size: tuple[int, int] = (224, 224)  # the model's input height, width (an int: square)
    resize: int = 256  # mode crop: the shorter side before the crop
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    mode: str = "crop"
    pad: tuple[int, int, int] = (0, 0, 0)
    align: str = "center"
    channels: str = "rgb"
    scale: int = 1
    layout: str = "nchw"
    dtype: str = "float32"

    def __post_init__(self):
        size = (self.size, self.size) if isinstance(self.size, (int, np.integer)) else tuple(self.size)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in size):
            raise ValueError(f"size must be H or HxW, whole pixels >= 1, got {self.size!r}")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        _one_of("mode", self.mode, MODES)
        _one_of("align", self.align, ALIGNS)
        _one_of("interpolation", self.interpolation, tuple(_INTERPOLATION))
        _one_of("channels", self.channels, CHANNELS)
        _one_of("scale", self.scale, SCALES)
        _one_of("layout", self.layout, LAYOUTS)
        _one_of("dtype", self.dtype, DTYPES)
        if self.mode == "crop" and not max(size) <= self.resize:
            raise ValueError(f"resize must be at least the crop's larger side {max(size)}, got {self.resize}")
        pad = tuple(self.pad)
        if len(pad) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in pad):
            raise ValueError(f"pad must be 3 whole pixel values 0..255 (R,G,B), got {self.pad!r}")
        object.__setattr__(self, "pad", tuple(int(v) for v in pad))
        n = self.num_channels
        for key in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, key))
            if len(values) != n:
                raise ValueError(f"{key} needs {n} value(s) for channels={self.channels}, got {len(values)}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{key} must be finite numbers, got {values}")
            object.__setattr__(self, key, values)
        if any(s == 0 for s in self.std):
            raise ValueError(f"std must not be 0 (every pixel would divide by zero), got {self.std}")

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    @property
    def input_size(self) -> int:
        """The side of a square input (every model zoodeploy trains); a non-square one has no single size."""
        if self.size[0] != self.size[1]:
            raise ValueError(f"this model's input is {self.size[0]}x{self.size[1]}, not square: use .size")
        return self.size[0]

    @property
    def size_text(self) -> str:
        """`224px` for a square input, `32x96px` (H x W) for another."""
        return f"{self.height}px" if self.height == self.width else f"{self.height}x{self.width}px"

    @property
    def num_channels(self) -> int:
        return 1 if self.channels == "gray" else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image's tensor shape: (C, H, W) or (H, W, C)."""
        c, (h, w) = self.num_channels, self.size
        return (c, h, w) if self.layout == "nchw" else (h, w, c)

    @property
    def np_dtype(self) -> type:
        return np.uint8 if self.dtype == "uint8" else np.float32

    @classmethod
    def for_size(cls, size: int | tuple[int, int], crop_fraction: float = 0.875, **kw) -> Preprocessing:
        """ImageNet-style preprocessing at another input size (resize = larger side / crop fraction)."""
        hw = (size, size) if isinstance(size, int) else tuple(size)
        return cls(size=hw, resize=round(max(hw) / crop_fraction), **kw)

    def at_size(self, size: int | tuple[int, int]) -> Preprocessing:
        """The same preprocessing at another input size, keeping the crop fraction."""
        hw = (size, size) if isinstance(size, int) else tuple(size)
        return replace(self, size=hw, resize=max(max(hw), round(max(hw) * self.resize / max(self.size))))

    def describe(self) -> str:
        """One line: `32x96 squash, bicubic, bgr, scale 255, mean .. std .., nhwc float32`."""
        geometry = {"crop": f"resize {self.resize} + centre crop", "squash": "squash",
                    "pad": f"pad {','.join(map(str, self.pad))} {self.align}"}[self.mode]
        pixels = "raw 0..255" if self.dtype == "uint8" else \
            f"scale {self.scale}, mean {_short(self.mean)}, std {_short(self.std)}"
        return (f"{self.height}x{self.width} {geometry}, {self.interpolation}, {self.channels}, {pixels}, "
                f"{self.layout} {self.dtype}")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        """From `to_dict`, or from the schema before H x W (`input_size`: a square side)."""
        d = dict(d)
        if "input_size" in d:
            d.setdefault("size", d.pop("input_size"))
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def _short(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


# Bounds on the decoded size, checked from the header before decoding. The pixel count alone is not
# enough: resizing scales the short side to the model's size, so a 1 x 1,000,000 strip (2 KB as PNG)
# would become 32 x 32,000,000 pixels (5 GB). The aspect ratio bounds what resizing makes (at most
# MAX_ASPECT times the model's resize target along the long side); MAX_SIDE bounds each dimension.
MAX_SIDE = 32_768
MAX_ASPECT = 32


def check_image_size(w: int, h: int, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse (ImageError, saying why) an image whose decoding or resizing would cost out of proportion."""
    if w < 1 or h < 1:
        raise ImageError(f"{name} is {w}x{h}: an image needs at least one pixel each way")
    if w * h > max_pixels:
        raise ImageError(f"{name} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
    if max(w, h) > MAX_SIDE:
        raise ImageError(f"{name} is {w}x{h}: a side over the limit of {MAX_SIDE} pixels")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{name} is {w}x{h}: an aspect ratio over {MAX_ASPECT}:1, which resizing would blow up; "
                         "crop it to the object first")


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image, refusing corrupt data, decompression bombs and images whose
    resizing would cost far more than their size (`check_image_size`, before decoding)."""
    name = "image" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes) and not source:
        raise ImageError("empty image data: send the image file's bytes")
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        w, h = img.size
        check_image_size(w, h, name, max_pixels)
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
    """One PIL image -> the model's input tensor for one image (`p.input_shape`, `p.dtype`)."""
    return normalize(crop(img, p), p)


def preprocess_batch(images: list[Image.Image], p: Preprocessing) -> np.ndarray:
    """Several PIL images -> the model's input batch (N, *p.input_shape)."""
    if not images:
        return np.zeros((0, *p.input_shape), p.np_dtype)
    return normalize(np.stack([crop(im, p) for im in images]), p)


def crop(img: Image.Image, p: Preprocessing) -> np.ndarray:
    """The pixels the model sees, before scaling: uint8 (H, W, C), in the model's channel order."""
    img = to_rgb(img)
    if p.channels == "gray":  # to one channel first, as a grayscale pipeline reads its images
        img = img.convert("L")
    arr = np.asarray(_fit(img, p))
    if p.channels == "gray":
        return arr[..., None]
    return np.ascontiguousarray(arr[..., ::-1]) if p.channels == "bgr" else arr


def _fit(img: Image.Image, p: Preprocessing) -> Image.Image:
    """The image at the model's H x W, by the record's mode."""
    (h, w), interp = p.size, _INTERPOLATION[p.interpolation]
    if p.mode == "squash":
        return img.resize((w, h), interp)
    iw, ih = img.size
    if p.mode == "pad":
        s = min(w / iw, h / ih)
        nw, nh = min(w, max(1, round(iw * s))), min(h, max(1, round(ih * s)))
        fill = p.pad[0] if img.mode == "L" else p.pad
        canvas = Image.new(img.mode, (w, h), fill)
        at = ((w - nw) // 2, (h - nh) // 2) if p.align == "center" else (0, 0)
        canvas.paste(img.resize((nw, nh), interp), at)
        return canvas
    scale = p.resize / min(iw, ih)
    size = (max(p.resize, round(iw * scale)), max(p.resize, round(ih * scale)))
    img = img.resize(size, interp)
    left, top = (size[0] - w) // 2, (size[1] - h) // 2
    return img.crop((left, top, left + w, top + h))


def normalize(pixels: np.ndarray, p: Preprocessing) -> np.ndarray:
    """uint8 crops (..., H, W, C) -> the model's tensor: scaled and normalized float32 (or the raw
    uint8), in its layout.

    Element by element, so one image or a stack of them gives the same bits; on a stack it runs
    once per batch instead of once per image (32 px digits: a third of the per-image time)."""
    if p.dtype == "uint8":
        arr = pixels.astype(np.uint8)
    else:
        arr = pixels.astype(np.float32)
        if p.scale == 1:
            arr = arr / 255.0
        arr = (arr - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)
    if p.layout == "nchw":
        arr = np.moveaxis(arr, -1, -3)
    return np.ascontiguousarray(arr)


def synthetic_batch(p: Preprocessing, n: int, seed: int = 0) -> np.ndarray:
    """`n` generated inputs of the model's shape and dtype (standard normal floats, or uniform uint8),
    for checks and timing where no images are recorded."""
    rng = np.random.default_rng(seed)
    if p.dtype == "uint8":
        return rng.integers(0, 256, (n, *p.input_shape), dtype=np.uint8)
    return rng.standard_normal((n, *p.input_shape)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
