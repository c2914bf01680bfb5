"""Training targets (DESIGN §4 items 1-3) on hand-built inputs, every expected value worked out by hand
in the comments: official semantics (quirks included), corrected semantics, full and light heads."""
import numpy as np
import pytest

from uniparser_sdk.train.collate import Collator, StreamBatchSampler
from uniparser_sdk.train.targets import (build_targets, corrected_center, feature_shape, grid_cell, grid_cell_cpu,
                                         instance_target, occurrence_index, official_center, part_target,
                                         positive_window, semantic_target)

C = 20  # CIHP classes: 2 hair, 5 upper-clothes, 7 coat, 9 pants


def test_centre_is_the_truncated_pixel_index_centroid_and_never_moves():
    m = np.zeros((64, 64), bool)
    m[0:4, 0:5] = True  # centroid (1.5, 2.0) in pixel-index coordinates (no +0.5) -> (1, 2)
    assert official_center(m) == (1, 2)
    two = np.zeros((64, 64), bool)
    two[10:20, 2:10] = True  # cols 2..9, mean 5.5
    two[10:20, 40:48] = True  # cols 40..47, mean 43.5 -> centroid (14.5, 24.5): off the mask
    assert official_center(two) == (14, 24) and not two[14, 24]  # [quirk] not moved onto the mask
    # corrected: nearest mask pixel to (14, 24): (14, 9) at distance 15 (the right piece is 16 away)
    assert corrected_center(two) == (14, 9)
    assert corrected_center(m) == (1, 2)  # on the mask: unchanged
    assert official_center(np.zeros((8, 8), bool)) == (0, 0) == corrected_center(np.zeros((8, 8), bool))


def test_grid_cell_float32_floor_division_quirk():
    # 400 / 800 = 0.5 exactly, but float32(1/40) > 1/40, so 0.5 // float32(1/40) = 19, not 20
    assert grid_cell(400, 800, 40) == 19 and grid_cell_cpu(400, 800, 40) == 19
    assert grid_cell(401, 800, 40) == 20
    assert grid_cell(31, 64, 8) == 3 and grid_cell(34, 72, 8) == 3 and grid_cell(34, 64, 8) == 4


def test_window_uses_max_minus_min_box():
    # rows 12..42 (max - min = 30, half = 0.5 * 30 * 0.2 = 3.0), centre row 27: 27 - 3 = 24 -> cell 3
    # (with the +1 box the half would be 3.1 and the window would reach row cell 2)
    # cols 16..35 (19 -> half 1.9), centre col 25: 23.1 -> cell 2, 26.9 -> cell 3
    assert positive_window((27, 25), (12, 16, 42, 35), (64, 64), 8, 0.2) == (3, 3, 2, 3)
    # clipped to the 3x3 around the centre cell (3, 3) even for a huge sigma
    assert positive_window((27, 25), (12, 16, 42, 35), (64, 64), 8, 5.0) == (2, 4, 2, 4)


def test_stride4_rules_instance_part_semantic():
    m = np.zeros((8, 12), bool)
    m[1:3, 1:3] = True  # block (0, 0): all four centre pixels (1..2 x 1..2)
    m[1:3, 5] = True  # block (0, 1): two of its centre pixels (1,5), (2,5)
    m[5, 1] = True  # block (1, 0): one centre pixel
    m[4, 8] = True  # block (1, 2): a corner pixel, no centre pixel
    np.testing.assert_array_equal(instance_target(m, (2, 3)), [[1, 0, 0], [0, 0, 0]])  # all four only
    np.testing.assert_array_equal(part_target(m, (2, 3)), [[1, 1, 0], [0, 0, 0]])  # >= 2 of four
    # a part whose >= 2 rule leaves nothing falls back to "any pixel of the 4x4 block"
    thin = np.zeros((8, 12), bool)
    thin[5, 1] = thin[4, 8] = True
    np.testing.assert_array_equal(part_target(thin, (2, 3)), [[0, 0, 0], [1, 0, 1]])
    assert instance_target(thin, (2, 3)).sum() == 0  # no fallback for persons
    # written into the top-left of a larger (light) feature map
    np.testing.assert_array_equal(instance_target(m, (3, 4)), [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])

    # semantic: each person sampled at (4i, 4j) = (0,0), (0,4), (4,0), (4,4)
    a = np.zeros((8, 8), np.uint8)
    a[:, 0:4] = 2  # -> [[2, 0], [2, 0]]
    b = np.zeros((8, 8), np.uint8)
    b[0:4, :] = 5
    b[4, 4] = 255  # -> [[5, 5], [0, 255]]
    c = np.zeros((8, 8), np.uint8)
    c[4, 4] = 3  # -> [[0, 0], [0, 3]]
    # [quirk] official: uint8 sum: 2 + 5 = 7, 255 + 3 = 258 = 2 (mod 256)
    np.testing.assert_array_equal(semantic_target([a, b, c], (2, 2), C), [[7, 5], [2, 2]])
    # corrected: first person with a category label wins; 255 never counts
    np.testing.assert_array_equal(semantic_target([a, b, c], (2, 2), C, "corrected"), [[2, 5], [2, 3]])


def test_occurrence_index():
    assert occurrence_index([2, 2, 2, 5, 5, 7]) == [0, 1, 2, 0, 1, 0]


def scene():
    """Four persons on a 64 x 64 pad (full head: 16 x 16 features, grid S = 8 over 64 pixels: 8 per cell)."""
    p1 = np.zeros((64, 64), np.uint8)
    p1[12:43, 16:36] = 2  # rows 12..42, cols 16..35: centroid (27.0, 25.5) -> (27, 25)
    p1[12:43, 16] = 9  # a one-pixel-wide part (box area 0): dropped from the parsing loss
    empty = np.zeros((64, 64), np.uint8)
    p2 = np.zeros((64, 64), np.uint8)
    p2[20:36, 24:40] = 5  # rows 20..35, cols 24..39: centroid (27.5, 31.5) -> (27, 31)
    tiny = np.zeros((64, 64), np.uint8)
    tiny[52:54, 56:58] = 5  # 2 x 2: centroid (52.5, 56.5) -> (52, 56)
    return [p1, empty, p2, tiny]


def test_official_targets_of_a_four_person_scene():
    t = build_targets(scene(), (64, 64), num_grid=8, num_classes=C)
    # windows: p1 (3..3, 2..3) [see test_window_uses_max_minus_min_box] -> cells 26, 27;
    # p2 centre (27, 31) cell (3, 3), half 1.5: rows 25.5..28.5 -> 3, cols 29.5 -> 3, 32.5 -> 4: cells 27, 28;
    # tiny centre (52, 56) cell (6, 7), half 0.1: cols 55.9 -> 6 (left of the centre cell), 56.1 -> 7: 54, 55.
    # The empty person has no pair; cell 27 is claimed twice and appears twice.
    assert t.pair_cell.tolist() == [26, 27, 27, 28, 54, 55]
    assert t.pair_person.tolist() == [0, 0, 1, 1, 2, 2]
    assert sorted(np.flatnonzero(t.center).tolist()) == [26, 27, 28, 54, 55] and t.center.sum() == 5
    assert t.centers.tolist() == [[27, 25], [27, 31], [52, 56]]
    # metric cells of ALL input persons, the empty one at its (0, 0) centre
    assert t.person_cell.tolist() == [27, 0, 27, 6 * 8 + 7]
    # instance targets (all four centre pixels): p1 rows 4i+1 >= 12 and 4i+2 <= 42 -> i = 3..10,
    # cols 4j+1 >= 16, 4j+2 <= 35 -> j = 4..8; the tiny person is kept with an EMPTY target
    assert t.instances.shape == (3, 16, 16)
    exp = np.zeros((16, 16), np.uint8)
    exp[3:11, 4:9] = 1
    np.testing.assert_array_equal(t.instances[0], exp)
    exp = np.zeros((16, 16), np.uint8)
    exp[5:9, 6:10] = 1  # p2: rows 20..35 -> 5..8, cols 24..39 -> 6..9
    np.testing.assert_array_equal(t.instances[1], exp)
    assert t.instances[2].sum() == 0
    # parts by category then person: (2, p1), (5, p2), (5, tiny); the 1-pixel-wide part 9 is dropped
    assert t.part_category.tolist() == [2, 5, 5] and t.part_person.tolist() == [0, 1, 2]
    assert t.part_instance.tolist() == [0, 0, 1]  # [quirk] occurrence index: tiny's part uses p2's map
    # part centres // 4: part 2 rows 12..42, cols 17..35 -> (27, 26) -> (6, 6); p2 (27, 31) -> (6, 7);
    # tiny (52, 56) -> (13, 14)
    assert t.part_cell.tolist() == [[6, 6], [6, 7], [13, 14]]
    exp = np.zeros((16, 16), np.uint8)
    exp[13, 14] = 1  # 1 of the four centre pixels -> fallback: the block holding any pixel
    np.testing.assert_array_equal(t.part_masks[2], exp)
    # semantic (pixel (4i, 4j)): p1 rows i = 3..10, col 16 (j = 4) label 9, j = 5..8 label 2;
    # p2 i = 5..8, j = 6..9 label 5; overlap (i = 5..8, j = 6..8) 2 + 5 = 7 [quirk]; tiny (13, 14) = 5
    exp = np.zeros((16, 16), np.uint8)
    exp[3:11, 4] = 9
    exp[3:11, 5:9] = 2
    exp[5:9, 9] = 5
    exp[5:9, 6:9] = 7
    exp[13, 14] = 5
    np.testing.assert_array_equal(t.semantic, exp)
    assert (np.flatnonzero(t.present_categories()) + 1).tolist() == [2, 5, 7, 9]


def test_corrected_targets_of_the_same_scene():
    t = build_targets(scene(), (64, 64), num_grid=8, num_classes=C, semantics="corrected")
    assert t.pair_cell.tolist() == [26, 27, 27, 28, 54, 55]  # centres on their masks: unchanged
    assert t.part_instance.tolist() == [0, 1, 2]  # each part with its owner's instance map
    assert t.semantic[5, 6] == 2 and t.semantic[5, 9] == 5  # p1 (first) keeps the overlap, no sum
    assert (np.flatnonzero(t.present_categories()) + 1).tolist() == [2, 5, 9]
    # a person whose centroid is off its mask: official (14, 24), corrected (14, 9)
    two = np.zeros((64, 64), np.uint8)
    two[10:20, 2:10] = 5
    two[10:20, 40:48] = 5
    # box rows 10..19 (half 0.9), cols 2..47 (half 4.5); official cx 24: 19.5 -> 2, 28.5 -> 3, row 14 -> 1
    assert build_targets([two], (64, 64), 8, C).pair_cell.tolist() == [10, 11]
    # corrected cx 9: 4.5 -> 0, 13.5 -> 1
    assert build_targets([two], (64, 64), 8, C, semantics="corrected").pair_cell.tolist() == [8, 9]


def test_light_head_grid_covers_four_times_the_feature_size():
    p = np.zeros((64, 64), np.uint8)
    p[30:39, 30:39] = 5  # centroid (34, 34); sigma 0.01 keeps only the centre cell
    full = build_targets([p], (64, 64), 8, C, sigma=0.01)
    light = build_targets([p], (64, 64), 8, C, sigma=0.01, light=True)
    assert feature_shape((64, 64), light=True) == (18, 18)
    assert full.pair_cell.tolist() == [4 * 8 + 4]  # 34 / 64 * 8 = 4.25
    assert light.pair_cell.tolist() == [3 * 8 + 3]  # grid over 4 * 18 = 72 pixels: 34 / 72 * 8 = 3.78
    assert light.instances.shape == (1, 18, 18) and light.semantic.shape == (18, 18)
    np.testing.assert_array_equal(light.instances[0, :16, :16], full.instances[0])
    assert light.instances[0, 16:].sum() == 0 and light.instances[0, :, 16:].sum() == 0


def test_label_255_is_foreground_without_part():
    p = np.zeros((32, 32), np.uint8)
    p[0:8, 0:8] = 255  # no part, but person foreground
    p[0:8, 8:16] = 5  # rows 0..7, cols 0..15: centroid (3.5, 7.5) -> (3, 7)
    t = build_targets([p], (32, 32), 4, C)
    assert t.centers.tolist() == [[3, 7]] and t.instances[0, 0:2, 0:4].all()
    assert t.part_category.tolist() == [5]
    assert t.semantic[0, 0] == 255 and t.present_categories().sum() == 1  # 255 is no category


def test_collator_pads_and_builds_targets_for_the_head_variant():
    rng = np.random.default_rng(0)
    samples = []
    for h, w in [(50, 70), (64, 40)]:
        person = np.zeros((h, w), np.uint8)
        person[10:40, 10:30] = 5
        samples.append({"id": f"{h}", "image": rng.standard_normal((h, w, 3)).astype(np.float32),
                        "persons": [person]})
    batch = Collator(num_grid=8, num_classes=C)(samples)
    assert tuple(batch["images"].shape) == (2, 3, 64, 96) and tuple(batch["center"].shape) == (2, 1, 8, 8)
    assert [tuple(v.shape) for v in batch["instances"]] == [(1, 16, 24), (1, 16, 24)]
    assert float(batch["images"][0, :, 50:].abs().sum()) == 0.0
    light = Collator(num_grid=8, num_classes=C, light=True, semantics="corrected")(samples)
    assert [tuple(v.shape) for v in light["semantic"]] == [(18, 26), (18, 26)]
    with pytest.raises(ValueError):
        Collator(8, C, semantics="nope")
    with pytest.raises(ValueError):
        build_targets([], (30, 30), 8, C)  # not a multiple of 4


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
