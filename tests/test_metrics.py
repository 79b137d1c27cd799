"""Tests for the evaluation metrics (paper Tables 1 and 2) against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import adapted_rand_error as skimage_adapted_rand_error
from skimage.metrics import variation_of_information as skimage_variation_of_information

from unet_tutorial import metrics
from unet_tutorial import segments
from unet_tutorial import warping

FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
EIGHT = np.ones((3, 3), dtype=bool)


# ----------------------------------------------------------------------------- helpers
def _component_counts(cells: np.ndarray) -> tuple[int, int]:
    """Brute force: 4-connected cells and 8-connected background (outside = membrane)."""
    padded = np.pad(cells, 1)
    return ndimage.label(padded, FOUR)[1], ndimage.label(~padded, EIGHT)[1]


def _is_simple_brute_force(cells: np.ndarray, r: int, c: int) -> bool:
    """A flip is simple when it changes neither component count (2-D, one pixel)."""
    flipped = cells.copy()
    flipped[r, c] = ~flipped[r, c]
    return _component_counts(cells) == _component_counts(flipped)


def _blocky_labels(rng, shape=(40, 40), n_seeds=8) -> np.ndarray:
    """ISBI-like labels: Voronoi cells (1) separated by one-pixel membranes (0)."""
    seeds = rng.integers(0, shape[0], size=(n_seeds, 2))
    rows, cols = np.indices(shape)
    distance = (rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2
    regions = distance.argmin(-1)
    boundary = np.zeros(shape, dtype=bool)
    boundary[:-1] |= regions[:-1] != regions[1:]
    boundary[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    return (~boundary).astype(np.uint8)


# ----------------------------------------------------------------------------- Rand and VI
@pytest.mark.parametrize("seed", range(20))
def test_adapted_rand_error_matches_skimage(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 30, size=2))
    truth = rng.integers(0, rng.integers(2, 8), size=shape)
    predicted = rng.integers(0, rng.integers(2, 8), size=shape)
    ours = metrics.adapted_rand_error(truth, predicted, prediction_background="label", self_pairs=False)
    reference = skimage_adapted_rand_error(truth, predicted)
    assert ours.error == pytest.approx(reference[0], abs=1e-12)
    # the challenge's convention: predicted background pixels are singletons,
    # i.e. skimage on a prediction whose 0-pixels each get a label of their own
    relabelled = predicted.copy()
    background = relabelled == 0
    relabelled[background] = predicted.max() + 1 + np.arange(background.sum())
    singletons = metrics.adapted_rand_error(truth, predicted, prediction_background="singletons", self_pairs=False)
    assert singletons.error == pytest.approx(skimage_adapted_rand_error(truth, relabelled)[0], abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_variation_of_information_matches_skimage(seed):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(rng.integers(5, 30, size=2))
    truth = rng.integers(0, rng.integers(2, 8), size=shape)
    predicted = rng.integers(0, rng.integers(2, 8), size=shape)
    for ignore in (False, True):
        ours = metrics.variation_of_information(truth, predicted, ignore_true_background=ignore)
        reference = skimage_variation_of_information(truth, predicted, ignore_labels=(0,) if ignore else ())
        np.testing.assert_allclose(ours, reference, atol=1e-10)


def test_variation_of_information_tells_split_from_merge():
    truth = np.repeat([[1, 1, 2, 2]], 4, axis=0)
    merged = np.ones_like(truth)
    split, merge = metrics.variation_of_information(truth, merged)
    assert split == pytest.approx(0.0) and merge == pytest.approx(1.0)
    split, merge = metrics.variation_of_information(merged, truth)
    assert split == pytest.approx(1.0) and merge == pytest.approx(0.0)


def test_variation_of_information_of_nothing_is_zero():
    assert metrics.variation_of_information(np.zeros((0, 4), int), np.zeros((0, 4), int)) == (0.0, 0.0)
    background_only = np.zeros((4, 4), int)
    assert metrics.variation_of_information(background_only, np.ones((4, 4), int),
                                            ignore_true_background=True) == (0.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        metrics.variation_of_information(np.zeros((4, 4), int), np.zeros((4, 5), int))


# ----------------------------------------------------------------------------- cells
def test_connectivity_structures_have_one_home():
    assert np.array_equal(segments.FOUR, FOUR) and np.array_equal(segments.EIGHT, EIGHT)
    assert warping.FOUR is segments.FOUR and warping.EIGHT is segments.EIGHT
    with pytest.raises(ValueError, match="4 or 8"):
        metrics.cell_components(np.ones((3, 3), bool), connectivity=6)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_cell_components_number_cells_slice_after_slice(connectivity):
    """One ndimage.label over the stack equals labelling each slice and offsetting its labels."""
    rng = np.random.default_rng(connectivity)
    stack = rng.random((4, 15, 17)) < 0.5
    structure = FOUR if connectivity == 4 else EIGHT
    expected = np.zeros(stack.shape, np.int32)
    offset = 0
    for index, cells in enumerate(stack):
        labelled, n = ndimage.label(cells, structure=structure)
        expected[index] = np.where(labelled > 0, labelled + offset, 0)
        offset += n
    result = metrics.cell_components(stack, connectivity=connectivity)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(metrics.cell_components(stack[1], connectivity=connectivity),
                                  ndimage.label(stack[1], structure=structure)[0])
    # two cells that touch only at a corner are one cell for 8-connectivity only
    corner = np.array([[1, 0], [0, 1]], bool)
    assert metrics.cell_components(corner, connectivity=connectivity).max() == (2 if connectivity == 4 else 1)


def test_rand_error_on_isbi_labels_perfect_split_and_swapped():
    rng = np.random.default_rng(0)
    labels = np.stack([_blocky_labels(rng) for _ in range(3)])
    assert metrics.rand_error(labels, labels) == 0.0
    assert metrics.v_rand(labels, labels) == 1.0
    assert metrics.v_info(labels, labels) == pytest.approx(1.0)
    # a membrane cut through one cell raises the error
    cut = labels.copy()
    cells = metrics.cell_components(labels[0])
    biggest = np.bincount(cells.ravel())[1:].argmax() + 1
    rows, cols = np.nonzero(cells == biggest)
    cut[0, rows.min():rows.max() + 1, int(np.median(cols))] = 0
    assert 0 < metrics.rand_error(cut, labels) < 1
    # swapped labels: every true-cell pixel is predicted membrane, a singleton,
    # so V_rand = 2n / (n + sum a_i^2) with a_i the true cell sizes
    swapped = 1 - labels
    sizes = np.bincount(metrics.cell_components(labels).ravel())[1:].astype(float)
    n = sizes.sum()
    assert metrics.rand_error(swapped, labels) == pytest.approx(1 - 2 * n / (n + (sizes ** 2).sum()))
    h_true = -(sizes / n * np.log2(sizes / n)).sum()
    assert metrics.v_info(swapped, labels) == pytest.approx(2 * h_true / (h_true + np.log2(n)))


def test_rand_error_is_pooled_over_slices_not_averaged():
    rng = np.random.default_rng(3)
    labels = np.stack([_blocky_labels(rng, n_seeds=4), _blocky_labels(rng, n_seeds=12)])
    predicted = labels.copy()
    predicted[0, :, 20] = 0
    pooled = metrics.adapted_rand_error(metrics.cell_components(labels), metrics.cell_components(predicted)).error
    assert metrics.rand_error(predicted, labels) == pytest.approx(pooled)


# ----------------------------------------------------------------------------- pixel error
@pytest.mark.parametrize("seed", range(10))
def test_pixel_error_matches_direct_count(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(2, 9, 11))
    predicted = rng.integers(0, 2, size=(2, 9, 11))
    tp = fp = fn = differ = 0
    for p, t in zip(predicted.ravel().tolist(), labels.ravel().tolist()):
        tp += p == 1 and t == 1
        fp += p == 1 and t == 0
        fn += p == 0 and t == 1
        differ += p != t
    f_score = 2 * tp / (2 * tp + fp + fn)
    assert metrics.pixel_error(predicted, labels) == pytest.approx(1 - f_score)
    assert metrics.pixel_error(predicted, labels, definition="mismatch") == pytest.approx(differ / labels.size)


# ----------------------------------------------------------------------------- warping error
def test_simple_point_table_matches_brute_force_component_counts():
    rng = np.random.default_rng(0)
    table = warping.simple_point_table()
    for _ in range(40):
        cells = rng.random((7, 7)) < 0.55
        padded = np.pad(cells, 1)
        for r in range(7):
            for c in range(7):
                code = warping._neighbourhood_codes(padded, np.array([r]), np.array([c]))[0]
                assert table[code] == _is_simple_brute_force(cells, r, c), (cells, r, c)
    # sanity: an isolated pixel and a pixel inside a solid block are not simple
    assert not table[0] and not table[255]


def test_warping_error_zero_for_simple_point_deformation():
    rng = np.random.default_rng(1)
    for _ in range(3):
        labels = _blocky_labels(rng, shape=(48, 48), n_seeds=6).astype(bool)
        deformed = labels.copy()
        touched = np.zeros_like(labels)
        for _ in range(400):  # flip random simple points, each pixel at most once
            r, c = rng.integers(0, 48, size=2)
            if not touched[r, c] and _is_simple_brute_force(deformed, r, c):
                deformed[r, c] = ~deformed[r, c]
                touched[r, c] = True
        assert touched.sum() > 20
        result = metrics.warping_error(deformed.astype(np.uint8), labels.astype(np.uint8))
        assert result.warping_error == 0.0 and result.topological_errors == 0
        assert metrics.pixel_error(deformed, labels, definition="mismatch") > 0


def _two_cells():
    labels = np.zeros((12, 21), dtype=np.uint8)
    labels[2:10, 2:10] = 1
    labels[2:10, 11:19] = 1  # one membrane column (10) between the cells
    return labels


def test_warping_counts_one_merge():
    labels = _two_cells()
    merged = labels.copy()
    merged[2:10, 10] = 1
    result = metrics.warping_error(merged, labels, return_warped=True)
    assert result.merges == 1 and result.topological_errors == 1
    # every pixel of the one-pixel membrane touches both cells, so none of them
    # is simple: the whole line (8 pixels) stays an error (a split, by contrast,
    # shrinks to one pixel, see the next test)
    assert result.n_mismatches == 8
    assert _component_counts(result.warped) == _component_counts(labels.astype(bool))


def test_warping_counts_one_split():
    labels = np.zeros((12, 12), dtype=np.uint8)
    labels[2:10, 2:10] = 1
    split = labels.copy()
    split[2:10, 6] = 0
    result = metrics.warping_error(split, labels)
    assert result.splits == 1 and result.topological_errors == 1 and result.n_mismatches == 1


def test_warping_counts_added_object_and_hole():
    labels = _two_cells()
    predicted = labels.copy()
    predicted[0, 15] = 1  # an extra one-pixel cell in the membrane
    predicted[5, 5] = 0  # a hole inside the first cell
    result = metrics.warping_error(predicted, labels)
    assert result.object_additions == 1 and result.hole_additions == 1
    assert result.splits == result.merges == 0 and result.n_mismatches == 2


@pytest.mark.parametrize("seed", range(5))
def test_warping_error_never_above_pixel_error(seed):
    rng = np.random.default_rng(seed)
    labels = _blocky_labels(rng, shape=(40, 40))
    predicted = labels ^ (rng.random(labels.shape) < 0.1)
    predicted = ndimage.binary_opening(predicted).astype(np.uint8)
    result = metrics.warping_error(predicted, labels, return_warped=True)
    assert 0 < result.warping_error <= metrics.pixel_error(predicted, labels, definition="mismatch")
    assert _component_counts(result.warped) == _component_counts(labels.astype(bool))


def test_warping_error_of_a_stack_adds_up_its_slices():
    rng = np.random.default_rng(7)
    labels = np.stack([_blocky_labels(rng) for _ in range(3)])
    predicted = labels.copy()
    predicted[0, 5:30, 20] = 0  # a cut: splits in slice 0 only
    predicted[2] = 1 - predicted[2]
    per_slice = [metrics.warping_error(predicted[i], labels[i]) for i in range(3)]
    stack = metrics.warping_error(predicted, labels, progress=True)
    assert stack.n_mismatches == sum(r.n_mismatches for r in per_slice)
    assert stack.warping_error == pytest.approx(np.mean([r.warping_error for r in per_slice]))
    assert stack.splits == sum(r.splits for r in per_slice) and per_slice[1].topological_errors == 0


def test_warping_perfect_and_swapped():
    rng = np.random.default_rng(2)
    labels = _blocky_labels(rng)
    perfect = metrics.warping_error(labels, labels)
    assert perfect.warping_error == 0 and perfect.topological_errors == 0
    swapped = metrics.warping_error(1 - labels, labels)
    assert swapped.warping_error > 0 and swapped.topological_errors > 0


# ----------------------------------------------------------------------------- threshold sweep
def test_isbi_scores_perfect_and_swapped():
    rng = np.random.default_rng(4)
    labels = np.stack([_blocky_labels(rng) for _ in range(2)])
    perfect = metrics.isbi_scores(1.0 - labels.astype(np.float32), labels)
    assert perfect.pixel_error == perfect.rand_error == perfect.warping_error == 0.0
    assert perfect.v_rand == 1.0 and perfect.v_info == pytest.approx(1.0)
    assert 0 < perfect.rand_error_threshold <= 1.0
    swapped = metrics.isbi_scores(labels.astype(np.float32), labels)
    assert swapped.pixel_error == 1.0  # no threshold finds a single true cell pixel
    assert swapped.pixel_mismatch == pytest.approx(labels.mean())  # best: predict all membrane
    assert swapped.rand_error > 0.5


def test_isbi_scores_each_error_minimised_over_thresholds():
    rng = np.random.default_rng(5)
    labels = _blocky_labels(rng)
    probabilities = np.clip(ndimage.gaussian_filter(1.0 - labels, 1.0) + rng.normal(0, 0.2, labels.shape), 0, 1)
    thresholds = (0.2, 0.5, 0.8)
    scores = metrics.isbi_scores(probabilities, labels, thresholds)
    for name, function in (("pixel_error", metrics.pixel_error), ("rand_error", metrics.rand_error)):
        values = [function((probabilities < t).astype(np.uint8), labels) for t in thresholds]
        assert getattr(scores, name) == pytest.approx(min(values))
        assert getattr(scores, f"{name}_threshold") == thresholds[int(np.argmin(values))]
    warp = [metrics.warping_error((probabilities < t).astype(np.uint8), labels).warping_error for t in thresholds]
    assert scores.warping_error == pytest.approx(min(warp))


def test_isbi_scores_threshold_with_cells_at_threshold(monkeypatch):
    """The sweep has one rule for turning a probability into cells: metrics.cells_at_threshold."""
    rng = np.random.default_rng(6)
    labels = _blocky_labels(rng)
    probabilities = rng.random(labels.shape)
    calls = []
    original = metrics.cells_at_threshold

    def spy(membrane, threshold):
        calls.append(threshold)
        return original(membrane, threshold)

    monkeypatch.setattr(metrics, "cells_at_threshold", spy)
    scores = metrics.isbi_scores(probabilities, labels, (0.3, 0.6), warping=False)
    assert calls == [0.3, 0.6]
    np.testing.assert_array_equal(original(np.array([0.2, 0.5, 0.8]), 0.5), [1, 0, 0])  # cell where P(membrane) < t
    assert scores.pixel_error == pytest.approx(min(metrics.pixel_error(original(probabilities, t), labels)
                                                   for t in (0.3, 0.6)))


# ----------------------------------------------------------------------------- bad and degenerate input
def test_bad_input_raises_clear_errors():
    labels = np.ones((8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_error(np.ones((8, 9), dtype=np.uint8), labels)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.isbi_scores(np.full((8, 8), 1.5), labels)
    with pytest.raises(ValueError, match="NaN"):
        metrics.isbi_scores(np.full((8, 8), np.nan), labels)
    with pytest.raises(ValueError, match="255"):
        metrics.rand_error(labels, labels * 255)
    with pytest.raises(ValueError, match="channel 0"):
        metrics.isbi_scores(np.zeros((2, 8, 8, 2)), np.ones((2, 8, 8, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        metrics.seg_score(np.ones((4, 4), int), np.ones((4, 5), int))
    with pytest.raises(ValueError, match="thresholds"):
        metrics.isbi_scores(np.zeros((8, 8)), labels, thresholds=(1.5,))


@pytest.mark.parametrize("truth_value", [0, 1])
@pytest.mark.parametrize("predicted_value", [0, 1])
def test_degenerate_maps_give_defined_values(truth_value, predicted_value):
    labels = np.full((2, 10, 10), truth_value, dtype=np.uint8)
    predicted = np.full((2, 10, 10), predicted_value, dtype=np.uint8)
    values = [metrics.pixel_error(predicted, labels), metrics.pixel_error(predicted, labels, definition="mismatch"),
              metrics.rand_error(predicted, labels), metrics.v_info(predicted, labels),
              metrics.warping_error(predicted, labels).warping_error,
              *metrics.iou(predicted, labels, n_classes=2), metrics.seg_score(predicted, labels)]
    assert all(np.isfinite(v) and 0 <= v <= 1 for v in values)
    scores = metrics.isbi_scores(1.0 - predicted.astype(np.float32), labels)
    assert all(np.isfinite(v) for v in (scores.pixel_error, scores.rand_error, scores.warping_error, scores.v_info))
    if truth_value == predicted_value:
        assert metrics.pixel_error(predicted, labels) == 0 and metrics.rand_error(predicted, labels) == 0


# ----------------------------------------------------------------------------- Table 2
def _table2_example():
    """GT objects A, B, C, D on one row; prediction splits A, merges B+C, misses D."""
    truth = np.zeros((1, 40), dtype=np.int32)
    truth[0, 0:10], truth[0, 12:22], truth[0, 24:28], truth[0, 30:34] = 1, 2, 3, 4
    predicted = np.zeros((1, 40), dtype=np.int32)
    predicted[0, 0:6], predicted[0, 6:10], predicted[0, 12:28], predicted[0, 30:32] = 1, 2, 3, 4
    return predicted, truth


def test_seg_score_hand_computed_split_merge_unmatched():
    predicted, truth = _table2_example()
    value, per_object = metrics.seg_score(predicted, truth, return_per_object=True)
    # A: largest piece 6 of 10 -> 6/10; B: 10/16; C: 4/16; D: covered by exactly half -> no match
    np.testing.assert_allclose(per_object, [0.6, 10 / 16, 4 / 16, 0.0])
    assert value == pytest.approx((0.6 + 10 / 16 + 4 / 16) / 4)
    assert metrics.seg_score(truth, truth) == 1.0
    assert metrics.seg_score(np.zeros_like(truth), truth) == 0.0
    assert metrics.seg_score(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_merged_objects_counts_true_objects_that_share_a_predicted_object():
    predicted, truth = _table2_example()
    # B and C lie in one predicted object; the split A and the half-covered D are no merges
    assert metrics.merged_objects(predicted, truth) == 2
    assert metrics.merged_objects(truth, truth) == 0
    assert metrics.merged_objects((truth > 0).astype(np.int32), truth) == 4  # one object over all four
    assert metrics.merged_objects(np.stack([predicted, predicted]), np.stack([truth, truth])) == 4
    with pytest.raises(ValueError):
        metrics.merged_objects(predicted[:, :20], truth)


def _two_touching_cells():
    """P(cell) of two cells side by side (columns 1-5 and 7-11), joined by a column of P = 0.6 (column 6)."""
    probability = np.zeros((5, 13), np.float32)
    probability[1:4, 1:6] = 0.95
    probability[1:4, 7:12] = 0.9
    probability[1:4, 6] = 0.6
    probability[2, 3] = probability[2, 9] = 0.99  # the cells' cores
    return probability


def test_cells_from_probability_splits_touching_cells_at_the_dip_between_their_seeds():
    probability = _two_touching_cells()
    plain = metrics.cells_from_probability(probability)
    assert plain.max() == 1 and np.array_equal(plain, metrics.cell_components(probability > 0.5))
    seeded = metrics.cells_from_probability(probability, seed_threshold=0.8)
    assert seeded.max() == 2 and np.array_equal(seeded > 0, probability > 0.5)  # the same pixels, two cells
    assert len(set(seeded[1:4, 1:6].ravel())) == 1 and len(set(seeded[1:4, 7:12].ravel())) == 1
    assert seeded[2, 3] != seeded[2, 9]
    # a seed threshold above every probability: no seed, each component stays one cell
    assert metrics.cells_from_probability(probability, seed_threshold=1.0).max() == 1
    # a stack: numbered across frames, each frame split on its own
    stack = metrics.cells_from_probability(np.stack([probability, probability]), seed_threshold=0.8)
    assert sorted(np.unique(stack[0])) == [0, 1, 2] and sorted(np.unique(stack[1])) == [0, 3, 4]
    # the split is what SEG rewards: the truth has two cells
    truth = np.zeros((5, 13), np.int32)
    truth[1:4, 1:6], truth[1:4, 7:12] = 1, 2
    assert metrics.seg_score(seeded, truth) > 0.8 > metrics.seg_score(plain, truth)
    with pytest.raises(ValueError, match="seed_threshold"):
        metrics.cells_from_probability(probability, seed_threshold=0.3)
    with pytest.raises(ValueError, match="probabilities"):
        metrics.cells_from_probability(probability * 255)


def test_iou_hand_computed():
    predicted, truth = _table2_example()
    np.testing.assert_allclose(metrics.iou(predicted > 0, truth > 0), [10 / 14, 26 / 30])
    np.testing.assert_allclose(metrics.iou(truth > 0, truth > 0), [1.0, 1.0])
    np.testing.assert_allclose(metrics.iou(truth == 0, truth > 0), [0.0, 0.0])
    # a class absent from both maps counts as perfectly predicted, never NaN
    np.testing.assert_allclose(metrics.iou(np.zeros((3, 3), int), np.zeros((3, 3), int), n_classes=2), [1.0, 1.0])


def test_seg_score_of_a_stack_averages_over_all_objects():
    predicted, truth = _table2_example()
    stack_value = metrics.seg_score(np.stack([predicted, truth]), np.stack([truth, truth]))
    assert stack_value == pytest.approx((0.6 + 10 / 16 + 4 / 16 + 0 + 4) / 8)


# ----------------------------------------------------------------------------- the challenge's warping error
def _cells_beside_a_membrane_column():
    """Two cells side by side, split by a one-pixel membrane column (0 = membrane, 1 = cell)."""
    truth = np.ones((9, 13), np.uint8)
    truth[:, 6] = 0
    return truth


def _one_cell_with_a_hole():
    truth = np.zeros((13, 13), np.uint8)
    truth[2:10, 2:10] = 1
    truth[5, 5] = 0
    return truth


def test_challenge_warping_error_ignores_added_and_deleted_objects_and_holes():
    """Fiji's minimum-splits-and-mergers warping error: these cost nothing; counting every mismatch they do."""
    one_cell = np.zeros((12, 12), np.uint8)
    one_cell[2:6, 2:6] = 1
    spurious = one_cell.copy()
    spurious[9, 9] = 1  # an isolated extra object
    deleted = one_cell.copy()
    deleted[2:6, 2:6] = 0  # the object is gone
    filled = _one_cell_with_a_hole()
    filled[5, 5] = 1  # the hole is filled
    cases = [(spurious, one_cell), (deleted, one_cell), (filled, _one_cell_with_a_hole())]
    for predicted, truth in cases:
        challenge = metrics.warping_error(predicted, truth)
        everything = metrics.warping_error(predicted, truth, count="all")
        assert challenge.warping_error == 0.0 and challenge.split_merge_pixels == 0
        assert everything.warping_error == pytest.approx(1 / truth.size)  # one pixel cannot be warped away
        assert challenge.n_mismatches == everything.n_mismatches == 1


def test_challenge_warping_error_counts_exactly_the_pixels_of_a_merge_and_a_split():
    truth = _cells_beside_a_membrane_column()
    merged = truth.copy()
    merged[4:6, 6] = 1  # a two-pixel gap in the membrane joins the two cells
    result = metrics.warping_error(merged, truth)
    assert result.split_merge_pixels == 2 and result.warping_error == pytest.approx(2 / truth.size)
    assert result.merges == 1
    split = truth.copy()
    split[4, 0:6] = 0  # a membrane line across the left cell
    result = metrics.warping_error(split, truth)
    # the warp moves five of the six pixels into the truth; the last one, which would cut the cell, stays
    assert result.split_merge_pixels == 1 and result.warping_error == pytest.approx(1 / truth.size)
    assert result.splits == 1
    assert metrics.warping_error(split, truth, count="all").warping_error == pytest.approx(1 / truth.size)
    with pytest.raises(ValueError, match="splits_and_mergers"):
        metrics.warping_error(split, truth, count="some")


def test_the_challenge_warping_sweep_never_tries_the_threshold_with_no_cell():
    """At t = 0 no pixel is cell; each true cell then shrinks to a point and the old count was small."""
    truth = _cells_beside_a_membrane_column()
    membrane = np.where(truth == 1, 0.95, 0.05)  # a confidently wrong prediction: membrane where cells are
    scores = metrics.isbi_scores(membrane, truth)
    assert scores.warping_error_threshold != 0.0
    assert metrics.WARPING_THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    everything = metrics.isbi_scores(membrane, truth, warping_count="all")
    assert everything.warping_error >= scores.warping_error


def test_the_sweep_skips_counting_errors_by_kind_but_gets_the_same_warping_error():
    from unet_tutorial.warping import stack_warping_error

    truth = _cells_beside_a_membrane_column()[None].astype(bool)
    merged = truth.copy()
    merged[0, 4:6, 6] = True
    fast = stack_warping_error(truth, merged, count_errors=False)
    full = stack_warping_error(truth, merged)
    assert fast.warping_error == full.warping_error > 0
    assert full.merges == 1 and fast.merges == 0


def test_cells_from_classes_splits_touching_cells_at_their_border_class():
    from unet_tutorial.weights import border_class_labels

    truth = np.zeros((12, 22), np.int32)
    truth[2:10, 2:11] = 1
    truth[2:10, 11:20] = 2  # two touching cells
    classes = border_class_labels(truth)
    probabilities = np.eye(3, dtype=np.float32)[classes] * 0.8 + 0.2 / 3
    cells = metrics.cells_from_classes(probabilities)
    assert len(np.unique(cells)) == 3  # background and two cells, not one merged blob
    np.testing.assert_array_equal(cells > 0, truth > 0)  # the border pixels are grown back into the cells
    assert metrics.seg_score(cells, truth) == pytest.approx(1.0, abs=0.05)
    # the same map read as two classes (P(cell) = 1 - P(background)) merges them
    assert len(np.unique(metrics.cells_from_probability(1 - probabilities[..., 0]))) == 2
    # a stack numbers its cells across frames; a ring of border with no interior is no cell
    stack = metrics.cells_from_classes(np.stack([probabilities, probabilities]))
    assert len(np.unique(stack)) == 5
    ring = np.where(classes == 1, 2, classes)
    assert metrics.cells_from_classes(np.eye(3, dtype=np.float32)[ring]).max() == 0
    with pytest.raises(ValueError, match="cells_from_probability"):
        metrics.cells_from_classes(probabilities[..., :2])


def test_cells_from_prediction_reads_two_and_three_classes_by_their_rules():
    rng = np.random.default_rng(0)
    for classes, rule in ((2, lambda p: metrics.cells_from_probability(p[..., 1])), (3, metrics.cells_from_classes)):
        probabilities = rng.random((2, 16, 16, classes)).astype(np.float32)
        probabilities /= probabilities.sum(-1, keepdims=True)
        np.testing.assert_array_equal(metrics.cells_from_prediction(probabilities), rule(probabilities))
        np.testing.assert_array_equal(metrics.cells_from_prediction(probabilities[0]), rule(probabilities[0]))
    with pytest.raises(ValueError, match="K = 2"):
        metrics.cells_from_prediction(np.full((8, 8, 4), 0.25))
