"""Tests for the paper's weight map (Ronneberger et al. 2015, Eq. 2)."""

import math
import time

import numpy as np
import pytest
from scipy import ndimage

from unet_tutorial.weights import class_balance_weights, instances_from_isbi, weight_map


def _disc(shape, centre, radius):
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


@pytest.fixture
def two_discs():
    """Two discs of radius 12 on a 64x96 image, 4 background pixels apart."""
    shape = (64, 96)
    labels = np.zeros(shape, dtype=np.int32)
    labels[_disc(shape, (32, 30), 12)] = 1
    labels[_disc(shape, (32, 58), 12)] = 2  # right edge of disc 1 at col 42, left of disc 2 at col 46
    return labels


def _distance_to(mask, row, col):
    """Distance from pixel (row, col) to the nearest True pixel of mask, by brute force."""
    rows, cols = np.nonzero(mask)
    return float(np.sqrt((rows - row) ** 2 + (cols - col) ** 2).min())


def test_class_balance_matches_inverse_frequency(two_discs):
    foreground = two_discs > 0
    w_c = class_balance_weights(foreground)
    n, n_fg = foreground.size, foreground.sum()
    np.testing.assert_allclose(w_c[foreground], n / (2 * n_fg), rtol=1e-6)
    np.testing.assert_allclose(w_c[~foreground], n / (2 * (n - n_fg)), rtol=1e-6)
    # Both classes carry the same total weight, and the mean weight is 1.
    np.testing.assert_allclose(w_c[foreground].sum(), w_c[~foreground].sum(), rtol=1e-5)
    np.testing.assert_allclose(w_c.mean(), 1.0, rtol=1e-5)


def test_class_balance_single_class_is_one():
    np.testing.assert_array_equal(class_balance_weights(np.zeros((5, 7), bool)), 1.0)
    np.testing.assert_array_equal(class_balance_weights(np.ones((5, 7), bool)), 1.0)


def test_weight_map_matches_formula_at_chosen_pixels(two_discs):
    w0, sigma = 10.0, 5.0
    weights = weight_map(two_discs, w0=w0, sigma=sigma)
    w_c = class_balance_weights(two_discs > 0)
    disc1, disc2 = two_discs == 1, two_discs == 2
    # Background pixels: in the gap, above the gap, far from both cells.
    for row, col in [(32, 44), (32, 43), (25, 44), (20, 44), (5, 44), (32, 4), (2, 90)]:
        assert two_discs[row, col] == 0
        d = sorted([_distance_to(disc1, row, col), _distance_to(disc2, row, col)])
        expected = w_c[row, col] + w0 * math.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
        assert weights[row, col] == pytest.approx(expected, rel=1e-5, abs=1e-5), (row, col)
    # Inside a cell there is no border term.
    assert weights[32, 30] == pytest.approx(w_c[32, 30])
    assert weights[32, 58] == pytest.approx(w_c[32, 58])


def test_weight_map_peaks_between_touching_cells(two_discs):
    weights = weight_map(two_discs)
    w_c = class_balance_weights(two_discs > 0)
    row, col = np.unravel_index(np.argmax(weights), weights.shape)
    assert two_discs[row, col] == 0
    assert 42 < col < 46, "maximum must lie in the gap between the two discs"
    # In the gap d1 + d2 = 4 (the discs are 4 px apart), so w ~ w_c + 10 exp(-16/50).
    assert weights[32, 44] == pytest.approx(w_c[32, 44] + 10 * math.exp(-16 / 50), rel=1e-5)
    # Far from any border the weight falls back to w_c.
    far = ndimage.distance_transform_edt(two_discs == 0) > 30
    assert far.any()
    np.testing.assert_allclose(weights[far], w_c[far], atol=1e-4)


def test_weight_map_equals_brute_force_on_random_cells():
    rng = np.random.default_rng(0)
    shape = (48, 40)
    labels = np.zeros(shape, np.int32)
    for index in range(1, 7):
        labels[_disc(shape, rng.integers(0, 48, 2), rng.integers(2, 6))] = index
    w0, sigma = 10.0, 5.0
    # Full-image distance transform for every cell, no truncation.
    distances = np.sort(
        np.stack([ndimage.distance_transform_edt(labels != i) for i in range(1, labels.max() + 1)]), axis=0
    )
    border = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
    expected = class_balance_weights(labels > 0) + np.where(labels == 0, border, 0.0)
    np.testing.assert_allclose(weight_map(labels, w0, sigma), expected, atol=1e-4 * w0)


def test_weight_map_without_class_balance_and_single_cell():
    labels = np.zeros((32, 32), np.int32)
    labels[8:20, 8:20] = 1
    # One cell: no second-nearest cell, so no border term; w_c = 1 without balancing.
    np.testing.assert_array_equal(weight_map(labels, class_balance=False), 1.0)
    assert weight_map(labels).dtype == np.float32


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((2, 8, 8), np.int32), ValueError),
        (np.zeros((8, 8), np.float32), TypeError),
        (-np.ones((8, 8), np.int32), ValueError),
    ],
)
def test_weight_map_rejects_bad_input(bad, error):
    with pytest.raises(error, match="got"):
        weight_map(bad)


def test_instances_from_isbi_separates_cells_by_membrane():
    labels = np.ones((10, 10), np.uint8)
    labels[:, 4] = 0  # vertical membrane
    labels[6, :4] = 0  # splits the left part
    labels[7, 5] = 0
    labels[8, 6] = 0  # a diagonal membrane fragment does not split 4-connectivity here
    instances = instances_from_isbi(labels)
    assert instances.dtype == np.int32
    assert instances.max() == 3
    np.testing.assert_array_equal(instances == 0, labels == 0)
    assert instances[0, 0] != instances[9, 0] and instances[0, 0] != instances[0, 9]


def test_instances_from_isbi_diagonal_touch_stays_apart():
    labels = np.array([[1, 0], [0, 1]], np.uint8)
    assert instances_from_isbi(labels).max() == 2


def test_instances_from_isbi_rejects_raw_255():
    with pytest.raises(ValueError, match="255"):
        instances_from_isbi(np.array([[0, 255], [255, 0]], np.uint8))


@pytest.mark.integration
def test_weight_map_on_isbi_slice_is_fast(shared_data):
    import tifffile

    raw = tifffile.imread(shared_data / "isbi2012" / "train-labels.tif")[0]
    labels = (raw == 255).astype(np.uint8)  # 0 = membrane, 1 = cell
    start = time.perf_counter()
    instances = instances_from_isbi(labels)
    weights = weight_map(instances)
    elapsed = time.perf_counter() - start
    assert instances.max() > 50  # an EM slice holds many cells
    assert elapsed < 1.0, f"weight map took {elapsed:.2f} s"
    # Membrane pixels between cells get the border term; cells never do.
    w_c = class_balance_weights(instances > 0)
    assert (weights[instances == 0] > w_c[instances == 0] + 1.0).mean() > 0.3
    np.testing.assert_allclose(weights[instances > 0], w_c[instances > 0])


def test_separate_touching_instances_opens_a_gap():
    from unet_tutorial.weights import separate_touching_instances

    labels = np.zeros((12, 20), np.int32)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2  # touches cell 1 along column 9/10
    labels[11, 0:3] = 3  # touches nothing
    separated = separate_touching_instances(labels)
    assert (separated[2:10, 9:11] == 0).all()  # the contact columns became background
    np.testing.assert_array_equal(separated[labels == 3], 3)
    np.testing.assert_array_equal(separated[2:10, 2:9], 1)
    np.testing.assert_array_equal(separated[2:10, 11:18], 2)
    # Before: no background between the cells, so no border term there; after: a peak.
    assert weight_map(labels)[5, 9:11].max() < 2.0
    assert weight_map(separated)[5, 9:11].min() > 5.0


def test_instances_from_isbi_are_the_metrics_cells():
    """One rule for an ISBI label image's cells: the weight map and the metrics count the same ones."""
    from unet_tutorial import metrics

    rng = np.random.default_rng(0)
    labels = (rng.random((30, 30)) < 0.6).astype(np.uint8)
    np.testing.assert_array_equal(instances_from_isbi(labels), metrics.cell_components(labels.astype(bool)))


def test_border_class_labels_ring_each_cell_and_split_touching_ones():
    from unet_tutorial.weights import border_class_labels

    labels = np.zeros((12, 20), np.int32)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2  # touches cell 1 along column 9/10
    classes = border_class_labels(labels)
    assert classes.dtype == np.uint8 and set(np.unique(classes)) == {0, 1, 2}
    np.testing.assert_array_equal(classes[labels == 0], 0)  # background stays background
    assert (classes[2:10, 9:11] == 2).all()  # the contact: border on both sides
    assert (classes[2, 2:18] == 2).all() and (classes[2:10, 2] == 2).all()  # the outline next to background
    np.testing.assert_array_equal(classes[3:9, 3:9], 1)  # the interior
    np.testing.assert_array_equal(classes[3:9, 11:17], 1)
