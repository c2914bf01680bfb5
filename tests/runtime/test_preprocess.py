import numpy as np
import pytest

from uniparser_sdk.runtime.geometry import ImageMeta, labels_to_original, original_to_resized
from uniparser_sdk.runtime.preprocess import (normalize, pad_size,
                                      preprocess, preprocess_batch, rescale_size, to_bgr_uint8_compatible)


@pytest.mark.parametrize("hw,expected", [((1000, 2000), (667, 1333)), ((800, 1333), (800, 1333)),
                                         ((480, 640), (800, 1067)), ((3000, 1000), (1333, 444)),
                                         ((1, 1), (800, 800)), ((100, 100), (800, 800))])
def test_rescale_size_keep_ratio(hw, expected):
    assert rescale_size(*hw) == expected
    h, w = expected
    assert max(h, w) <= 1333 and min(h, w) <= 800


def test_pad_size():
    assert pad_size(667, 1333) == (672, 1344)
    assert pad_size(800, 800) == (800, 800)


def test_normalize_values():
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 0] = (103, 116, 123)  # BGR close to the mean
    img[0, 1] = (255, 0, 0)  # pure blue
    x = normalize(img)
    assert np.allclose(x[0, 0], [(123 - 123.675) / 58.395, (116 - 116.28) / 57.12, (103 - 103.53) / 57.375], atol=1e-6)
    assert np.allclose(x[0, 1], [-123.675 / 58.395, -116.28 / 57.12, (255 - 103.53) / 57.375], atol=1e-6)


def test_preprocess_layout_and_padding_is_zero():
    img = np.full((100, 150, 3), 200, np.uint8)
    x, meta = preprocess(img)
    assert meta == ImageMeta((100, 150), (800, 1200), (800, 1216))
    assert x.shape == (1, 3, 800, 1216) and x.dtype == np.float32
    assert np.all(x[:, :, :, 1200:] == 0)
    assert np.allclose(x[0, 0, :, :1200], (200 - 123.675) / 58.395, atol=1e-5)  # channel 0 is R


def test_input_kinds_agree():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    ref, _ = preprocess(bgr)
    assert np.array_equal(preprocess(bgr[:, :, ::-1].copy(), color="rgb")[0], ref)
    assert np.array_equal(preprocess(np.dstack([bgr, np.full((40, 60), 7, np.uint8)]))[0], ref)
    assert np.allclose(preprocess(bgr.astype(np.float32) / 255.0)[0], ref, atol=0.02)  # uint8 resize rounds to integers
    gray = bgr[:, :, 0]
    g3, _ = preprocess(np.dstack([gray] * 3))
    assert np.array_equal(preprocess(gray)[0], g3)
    assert np.array_equal(preprocess(gray[:, :, None])[0], g3)


@pytest.mark.parametrize("bad,err", [(np.zeros((0, 5, 3), np.uint8), ValueError), (np.zeros((4, 4, 3), bool), TypeError),
                                     (np.zeros((4, 4, 2), np.uint8), ValueError), (np.zeros((2, 2, 2, 3)), ValueError),
                                     ([[1, 2]], TypeError), (np.array([["a"]]), TypeError)])
def test_bad_inputs(bad, err):
    with pytest.raises(err):
        to_bgr_uint8_compatible(bad)


def test_label_round_trip_to_original():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 20, (50, 75)).astype(np.uint8)  # original size
    _, meta = preprocess(np.zeros((50, 75, 3), np.uint8))
    assert meta.img_shape == (800, 1200)
    resized = original_to_resized(labels, meta, labels=True)
    padded = np.zeros(meta.pad_shape, np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    back = labels_to_original(padded, meta)
    assert back.shape == (50, 75)
    assert (back == labels).mean() > 0.99


def test_batch_pads_to_largest():
    batch, metas = preprocess_batch([np.zeros((100, 150, 3), np.uint8), np.zeros((150, 100, 3), np.uint8)])
    assert batch.shape == (2, 3, 1216, 1216)
    assert metas[0].img_shape == (800, 1200) and metas[1].img_shape == (1200, 800)
    assert all(m.pad_shape == (1216, 1216) for m in metas)
    with pytest.raises(ValueError):
        preprocess_batch([])


def test_normalization_from_metadata():
    from uniparser_sdk.runtime.preprocess import IMAGENET, Normalization

    assert Normalization.from_meta(None) == IMAGENET == Normalization.from_meta({})
    n = Normalization.from_meta({"mean": [1, 2, 3], "std": [1, 1, 2], "color": "BGR"})
    assert n.color == "bgr" and n.mean == (1.0, 2.0, 3.0)
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 0] = (10, 20, 30)  # B, G, R
    np.testing.assert_allclose(normalize(img, n)[0, 0], [9, 18, 13.5])  # BGR order kept
    np.testing.assert_allclose(normalize(img, {"mean": [0, 0, 0], "std": [1, 1, 1]})[0, 0], [30, 20, 10])
    np.testing.assert_array_equal(normalize(img), normalize(img, IMAGENET))
    for bad in ({"color": "yuv"}, {"std": [1, 0, 1]}, {"mean": [1, 2]}, {"mean": "abc"}):
        with pytest.raises(ValueError):
            Normalization.from_meta(bad)


def test_batch_mixed_colour_orders_and_padding():
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    batch, metas = preprocess_batch([bgr, bgr[:, :, ::-1].copy(), bgr[:20]], scale=(64, 48), color=["bgr", "rgb", "bgr"])
    np.testing.assert_array_equal(batch[0], batch[1])
    h, w = metas[2].img_shape
    assert not batch[2][:, h:].any() and not batch[2][:, :, w:].any()  # padding stays exactly 0
    with pytest.raises(ValueError):
        preprocess_batch([bgr, bgr], color=["bgr"])
