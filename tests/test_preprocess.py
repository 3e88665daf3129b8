"""Preprocessing: any PIL mode to RGB, exact resize/crop/normalize, bad images refused."""

import io

import numpy as np
import pytest
from PIL import Image

from zoodeploy.errors import ImageError
from zoodeploy.preprocess import Preprocessing, load_image, preprocess, preprocess_batch, softmax


def _png(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_every_mode_becomes_the_same_shape(mode):
    rgb = Image.fromarray(np.arange(48 * 40 * 3, dtype=np.uint8).reshape(40, 48, 3) % 251, "RGB")
    img = rgb.convert(mode) if mode != "I;16" else Image.fromarray((np.arange(40 * 48).reshape(40, 48) * 30).astype(np.uint16))
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "CMYK" else "PNG")
    out = preprocess(load_image(_png(img, fmt)), Preprocessing(size=32, resize=36))
    assert out.shape == (3, 32, 32) and out.dtype == np.float32 and np.isfinite(out).all()


def test_sixteen_bit_uses_the_full_range():
    img = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    out = preprocess(img, Preprocessing(size=8, resize=8, mean=(0, 0, 0), std=(1, 1, 1)))
    assert np.allclose(out, 1.0)


def test_resize_shorter_side_then_centre_crop_then_normalize():
    p = Preprocessing(size=4, resize=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    # a 16x8 image: shorter side 8 -> 16x8 stays, centre crop 4x4 of the middle
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, 6:10] = 255  # the middle 4 columns white
    out = preprocess(Image.fromarray(arr), p)
    assert np.allclose(out, 1.0)  # (1 - 0.5) / 0.5
    assert preprocess_batch([Image.fromarray(arr)] * 3, p).shape == (3, 3, 4, 4)


def test_transparent_pixels_become_black_not_garbage():
    img = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    out = preprocess(img, Preprocessing(size=4, resize=4, mean=(0, 0, 0), std=(1, 1, 1)))
    assert np.allclose(out, 0.0)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"definitely not an image", "not a readable image"),
    (_png(Image.new("RGB", (64, 64), "red"))[:60], "not a readable image"),
], ids=["empty", "not-an-image", "truncated-png"])
def test_bad_bytes_are_image_errors(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_decompression_bomb_is_refused_before_decoding():
    big = _png(Image.new("L", (2000, 2000)))
    with pytest.raises(ImageError, match="over the limit"):
        load_image(big, max_pixels=1_000_000)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_preprocessing_round_trips_and_validates():
    p = Preprocessing.for_size(64)
    assert p.resize == 73 and Preprocessing.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError):
        Preprocessing(size=64, resize=32)


def test_softmax_rows_sum_to_one():
    s = softmax(np.array([[1000.0, 0.0], [1.0, 2.0]], np.float32))
    assert np.allclose(s.sum(1), 1.0) and s[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("prep", [Preprocessing(), Preprocessing.for_size(32),
                                  Preprocessing(size=48, resize=55, interpolation="bicubic")])
def test_a_batch_is_bit_for_bit_its_images_one_by_one(prep):
    # normalization runs once per batch (predict, bundles): it must not change a single bit
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
              for shape in [(300, 250, 3), (64, 80, 3), (32, 32, 3), (50, 40)]]
    batch = preprocess_batch(images, prep)
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    for one, image in zip(batch, images):
        assert np.array_equal(one, preprocess(image, prep))


# ---- the whole input contract (#30): H x W, modes, channels, scale, layout, dtype ----------------

def _gradient(w=60, h=40) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 4
    arr[..., 2] = 200
    return Image.fromarray(arr)


def test_layout_dtype_channels_and_scale():
    img = _gradient()
    rgb = preprocess(img, Preprocessing(size=(8, 12), mode="squash", mean=(0, 0, 0), std=(1, 1, 1), scale=255,
                                        dtype="float32"))
    raw = np.asarray(img.resize((12, 8), Image.BILINEAR))
    assert rgb.shape == (3, 8, 12) and np.array_equal(rgb, np.moveaxis(raw, -1, 0).astype(np.float32))
    nhwc = preprocess(img, Preprocessing(size=(8, 12), mode="squash", layout="nhwc", dtype="uint8"))
    assert nhwc.dtype == np.uint8 and np.array_equal(nhwc, raw)
    bgr = preprocess(img, Preprocessing(size=(8, 12), mode="squash", channels="bgr", layout="nhwc", dtype="uint8"))
    assert np.array_equal(bgr, raw[..., ::-1])
    gray = preprocess(img, Preprocessing(size=(8, 12), mode="squash", channels="gray", mean=(0.5,), std=(0.5,)))
    want = (np.asarray(img.convert("L").resize((12, 8), Image.BILINEAR), np.float32) / 255.0 - 0.5) / 0.5
    assert gray.shape == (1, 8, 12) and np.allclose(gray[0], want)


def test_pad_keeps_the_ratio_and_fills():
    img = Image.new("RGB", (40, 10), (255, 255, 255))
    p = Preprocessing(size=(20, 20), mode="pad", pad=(10, 20, 30), layout="nhwc", dtype="uint8")
    out = preprocess(img, p)
    assert out.shape == (20, 20, 3)
    assert (out[:7] == (10, 20, 30)).all() and (out[8:12] == 255).all()  # 20x5 image centred: rows 7..12
    top = preprocess(img, Preprocessing(size=(20, 20), mode="pad", align="topleft", layout="nhwc", dtype="uint8"))
    assert (top[:5] == 255).all() and (top[5:] == 0).all()


def test_non_square_crop_and_batch():
    p = Preprocessing(size=(16, 32), resize=40)
    out = preprocess_batch([_gradient(), _gradient(90, 50)], p)
    assert out.shape == (2, 3, 16, 32)
    assert preprocess_batch([], Preprocessing(size=(4, 6), layout="nhwc", dtype="uint8")).shape == (0, 4, 6, 3)
    with pytest.raises(ValueError, match="not square"):
        p.input_size


@pytest.mark.parametrize("kw, needle", [
    ({"std": (0.2, 0.0, 0.2)}, "std must not be 0"), ({"mean": (float("nan"),) * 3}, "mean must be finite"),
    ({"size": (0, 8)}, "size must be"), ({"channels": "gray"}, "mean needs 1 value"),
    ({"size": 8, "resize": 4}, "resize must be at least"), ({"layout": "chw"}, "layout must be one of")])
def test_a_record_that_cannot_work_is_refused(kw, needle):
    with pytest.raises(ValueError, match=needle):
        Preprocessing(**kw)


def test_old_records_still_read():
    """Schema 2 wrote a square `input_size`: ONNX metadata and bundles read it, cards migrate it."""
    from zoodeploy.card import ModelCard
    old = {"input_size": 32, "resize": 36, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
           "interpolation": "bilinear"}
    p = Preprocessing.from_dict(old)
    assert p.size == (32, 32) and p.resize == 36 and p.channels == "rgb" and p.layout == "nchw"
    card = ModelCard.model_validate({"schema_version": 2, "name": "m", "num_classes": 2, "labels": ["a", "b"],
                                     "preprocessing": old})
    assert card.schema_version == 3 and card.preprocessing == p and card.input_shape == (3, 32, 32)
    assert Preprocessing.from_dict(p.to_dict()) == p
