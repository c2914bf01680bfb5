"""Training targets: adapted centres, 3x3 positives clipped by the sigma box, stride-4 masks, collation."""
import numpy as np
import pytest

from uniparser_sdk.train.collate import Collator, StreamBatchSampler
from uniparser_sdk.train.targets import adapted_center, build_targets, downsample_labels, positive_cells


def _cells(t, S):
    return sorted((int(i) // S, int(i) % S) for i in t.pos_index)


def test_centroid_of_ring_moves_to_nearest_mask_pixel():
    yy, xx = np.mgrid[:64, :64] + 0.5
    r = np.hypot(yy - 32, xx - 32)
    ring = (r >= 10) & (r <= 16)
    cy, cx = adapted_center(ring)
    assert ring[int(cy), int(cx)], "adapted centre must lie on the mask"
    d = np.hypot(cy - 32, cx - 32)
    assert 9.0 <= d <= 11.0  # on the inner edge, the nearest mask pixels to the hole's centre
    # a convex blob keeps its true centroid
    blob = (np.abs(yy - 20.5) < 6) & (np.abs(xx - 40.5) < 4)
    assert adapted_center(blob) == pytest.approx((20.5, 40.5))


def test_ring_target_centre_cell_is_on_the_ring():
    yy, xx = np.mgrid[:64, :64] + 0.5
    r = np.hypot(yy - 32, xx - 32)
    person = np.where((r >= 10) & (r <= 16), 5, 0).astype(np.uint8)
    t = build_targets([person], (64, 64), num_grid=16, num_classes=20)
    cy, cx = t.centers[0]
    assert person[int(cy), int(cx)] == 5
    # the centre cell (cell of the adapted centre) is among the positives
    assert (int(cy // 4), int(cx // 4)) in _cells(t, 16)


def test_positives_are_3x3_at_most_and_clipped_by_sigma_box():
    S, pad = 12, (96, 96)  # 8 pixels per grid cell
    # wide, flat person: rows 44..59, cols 12..91 -> centre (52, 52) in cell (6, 6);
    # sigma box half extents 0.1*16 = 1.6 rows (stays in row 6), 0.1*80 = 8 cols (cells 5..7)
    flat = np.zeros(pad, np.uint8)
    flat[44:60, 12:92] = 5
    t = build_targets([flat], pad, S, 20, sigma=0.2)
    assert t.centers[0] == pytest.approx((52.0, 52.0))
    assert positive_cells(t.centers[0], t.boxes[0], pad, S, 0.2) == (6, 6, 5, 7)
    assert _cells(t, S) == [(6, 5), (6, 6), (6, 7)]
    assert t.center.sum() == 3 and (t.pos_person == 0).all()
    # big square: full 3x3 around the centre cell, never more
    big = np.zeros(pad, np.uint8)
    big[12:92, 12:92] = 5
    t = build_targets([big], pad, S, 20, sigma=0.2)
    assert _cells(t, S) == [(y, x) for y in (5, 6, 7) for x in (5, 6, 7)]
    # tiny sigma: only the centre cell
    t = build_targets([big], pad, S, 20, sigma=0.01)
    assert _cells(t, S) == [(6, 6)]
    # a person at the border: clipped to the grid
    corner = np.zeros(pad, np.uint8)
    corner[0:40, 0:40] = 3
    t = build_targets([corner], pad, S, 20, sigma=0.5)
    assert _cells(t, S) == [(y, x) for y in (1, 2, 3) for x in (1, 2, 3)]
    t = build_targets([corner[:8, :8].copy()], pad, S, 20, sigma=0.9)
    assert _cells(t, S) == [(0, 0)]


def test_overlapping_claims_go_to_the_smaller_person():
    pad, S = (96, 96), 12
    big = np.zeros(pad, np.uint8)
    big[4:92, 20:76] = 5  # centre (48, 48) cell (6, 6)
    small = np.zeros(pad, np.uint8)
    small[44:60, 52:68] = 13  # centre (52, 60) cell (6, 7); sigma box reaches cells rows 6..7, cols 7..8
    t = build_targets([big, small], pad, S, 20, sigma=0.5)
    owner = {c: int(p) for c, p in zip(_cells(t, S), t.pos_person[np.argsort(t.pos_index)])}
    assert sorted(c for c, p in owner.items() if p == 1) == [(6, 7), (6, 8), (7, 7), (7, 8)]
    # the big person (3x3 around (6, 6)) loses the two cells the small one claims
    assert sorted(c for c, p in owner.items() if p == 0) == [(5, 5), (5, 6), (5, 7), (6, 5), (6, 6), (7, 5), (7, 6)]


def test_stride4_masks_and_category_masks():
    pad = (32, 32)
    a = np.zeros(pad, np.uint8)
    a[0:16, 0:16] = 2  # hair
    a[16:32, 0:16] = 5  # upper-clothes
    b = np.zeros(pad, np.uint8)
    b[8:32, 16:32] = 5
    b[2, 30] = 13  # single pixel at a sampled position (2 mod 4): survives
    b[1, 17] = 14  # single pixel off the sampling grid: gone at stride 4
    b[0:4, 24:28][b[0:4, 24:28] == 0] = 255  # ignore label -> background
    t = build_targets([a, b], pad, num_grid=8, num_classes=20)
    assert t.labels.shape == (2, 8, 8) and t.labels.dtype == np.uint8
    np.testing.assert_array_equal(t.labels[0], downsample_labels(a))
    assert t.labels[1][0, 7] == 13 and 14 not in t.labels[1] and 255 not in t.labels[1]
    inst = t.instance_masks()
    assert inst[0].sum() == 32 and inst[1].sum() == 6 * 4 + 1
    cats = t.category_masks()
    assert cats.shape == (19, 8, 8)
    np.testing.assert_array_equal(cats[5 - 1], (t.labels == 5).any(0))
    assert cats[2 - 1].sum() == 16 and cats[13 - 1].sum() == 1 and cats[14 - 1].sum() == 0
    parts = t.part_masks()
    assert parts.shape == (2, 19, 8, 8)
    assert parts[0, 5 - 1].sum() == 16 and parts[1, 5 - 1].sum() == 24
    present = np.flatnonzero(t.present_categories()) + 1
    assert present.tolist() == [2, 5, 13]


def test_persons_too_small_at_stride4_are_dropped_and_padding_is_respected():
    p = np.zeros((30, 30), np.uint8)
    p[1, 1] = 7  # never sampled at stride 4
    t = build_targets([p], (32, 32), num_grid=8, num_classes=20)
    assert t.num_persons == 0 and t.center.sum() == 0 and t.pos_index.size == 0
    with pytest.raises(ValueError):
        build_targets([p], (30, 30), num_grid=8, num_classes=20)  # not a multiple of 4


def test_collator_pads_to_batch_max_and_multiple_of_32():
    rng = np.random.default_rng(0)
    samples = []
    for h, w in [(50, 70), (64, 40)]:
        persons = [np.zeros((h, w), np.uint8)]
        persons[0][10:40, 10:30] = 5
        samples.append({"id": f"{h}", "image": rng.standard_normal((h, w, 3)).astype(np.float32), "persons": persons})
    batch = Collator(num_grid=8, num_classes=20)(samples)
    assert tuple(batch["images"].shape) == (2, 3, 64, 96)
    assert tuple(batch["center"].shape) == (2, 1, 8, 8)
    assert [tuple(l.shape) for l in batch["labels"]] == [(1, 16, 24), (1, 16, 24)]
    assert float(batch["images"][0, :, 50:].abs().sum()) == 0.0


def test_stream_sampler_is_deterministic_and_shards_the_global_batch():
    full = StreamBatchSampler(20, 4, 0, 12, seed=3)
    again = list(StreamBatchSampler(20, 4, 7, 12, seed=3))
    assert list(full)[7:] == again  # resume at iteration 7 sees the same batches
    r0 = list(StreamBatchSampler(20, 2, 0, 12, seed=3, rank=0, world_size=2))
    r1 = list(StreamBatchSampler(20, 2, 0, 12, seed=3, rank=1, world_size=2))
    for g, a, b in zip(full, r0, r1):
        assert g == a + b
    epoch0 = [i for b in list(full)[:5] for i, e in b]
    assert sorted(epoch0) == list(range(20))  # one epoch = a permutation
