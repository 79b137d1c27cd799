"""Tests for elastic deformation and the other augmentations (paper Sec. 3.1)."""

import numpy as np
import pytest
from scipy import ndimage

from unet_tutorial.augment import augment_sample, elastic_deform


@pytest.fixture
def blobs():
    """(image, labels): three rectangles/discs with labels 3 and 7; image = 0.2 + 0.6 * (label > 0)."""
    rows, cols = np.indices((96, 80))
    labels = np.zeros((96, 80), np.uint8)
    labels[(rows - 30) ** 2 + (cols - 25) ** 2 <= 14**2] = 3
    labels[55:85, 40:70] = 7
    labels[10:20, 50:75] = 3
    image = np.where(labels > 0, 0.8, 0.2).astype(np.float32)
    return image, labels


def _dihedral(array):
    """The 8 flips/rotations of an array, in a fixed order."""
    out = []
    for flipped in (array, np.flip(array, axis=1)):
        for k in range(4):
            out.append(np.rot90(flipped, k))
    return out


def test_zero_displacement_is_identity(blobs):
    image, labels = blobs
    weights = np.random.default_rng(1).random(labels.shape).astype(np.float32)
    out_image, out_labels, out_weights = elastic_deform(image, labels, sigma=0.0, rng=0, weights=weights)
    np.testing.assert_allclose(out_image, image, atol=1e-6)
    np.testing.assert_array_equal(out_labels, labels)
    np.testing.assert_array_equal(out_weights, weights)


def test_labels_keep_their_values_and_dtypes(blobs):
    image, labels = blobs
    weights = np.where(labels > 0, 2.5, 0.5).astype(np.float32)
    for seed in range(5):
        out_image, out_labels, out_weights = elastic_deform(image, labels, sigma=10.0, rng=seed, weights=weights)
        assert set(np.unique(out_labels)) <= {0, 3, 7}
        assert set(np.unique(out_weights)) <= {0.5, 2.5}
        assert out_labels.dtype == labels.dtype and out_image.dtype == image.dtype
        assert out_image.shape == image.shape
        # Cubic overshoot is clipped to the input range.
        assert out_image.min() >= 0.2 - 1e-6 and out_image.max() <= 0.8 + 1e-6


def test_image_and_labels_move_together(blobs):
    image, labels = blobs
    out_image, out_labels, _ = elastic_deform(image, labels, sigma=10.0, rng=42)
    # The deformation really moved the shapes ...
    assert (out_labels != labels).mean() > 0.02
    # ... and the image's edges (where it crosses 0.5) lie on the label's edges:
    # the thresholded image equals the labels except at pixels next to a label border.
    mismatch = (out_image > 0.5) != (out_labels > 0)
    foreground = out_labels > 0
    near_border = ndimage.binary_dilation(foreground) & ~ndimage.binary_erosion(foreground)
    assert mismatch.mean() < 0.01
    assert not (mismatch & ~near_border).any()


def test_multichannel_and_uint8_images(blobs):
    image, labels = blobs
    rgb = np.stack([image, 1 - image, image], axis=-1)
    rgb8 = (rgb * 255).astype(np.uint8)
    out, out_labels, _ = elastic_deform(rgb8, labels, rng=3)
    assert out.shape == rgb8.shape and out.dtype == np.uint8
    # Every channel is deformed with the same field as the labels.
    mismatch = (out[..., 0] > 127) != (out_labels > 0)
    assert mismatch.mean() < 0.01
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_same_seed_same_result_other_seed_different(blobs):
    image, labels = blobs
    first = elastic_deform(image, labels, rng=7)
    second = elastic_deform(image, labels, rng=np.random.default_rng(7))
    other = elastic_deform(image, labels, rng=8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_displacement_size_follows_sigma(blobs):
    image, labels = blobs
    small = (elastic_deform(image, labels, sigma=0.5, rng=1)[1] != labels).mean()
    large = (elastic_deform(image, labels, sigma=10.0, rng=1)[1] != labels).mean()
    assert small < large


def test_flips_and_rotations_act_alike_on_all_arrays(blobs):
    image, labels = blobs
    labels = labels[:80, :80]
    image = np.random.default_rng(0).random((80, 80)).astype(np.float32)
    weights = np.random.default_rng(1).random((80, 80)).astype(np.float32)
    seen = set()
    for seed in range(16):
        out = augment_sample(image, labels, weights, rng=seed, elastic=False, intensity=False)
        index = [i for i, candidate in enumerate(_dihedral(image)) if np.array_equal(candidate, out[0])]
        assert len(index) == 1
        np.testing.assert_array_equal(out[1], _dihedral(labels)[index[0]])
        np.testing.assert_array_equal(out[2], _dihedral(weights)[index[0]])
        seen.add(index[0])
    assert len(seen) >= 4  # the transforms are actually random


def test_augment_sample_keeps_non_square_shape(blobs):
    image, labels = blobs
    for seed in range(8):
        out_image, out_labels, out_weights = augment_sample(image, labels, rng=seed)
        assert out_image.shape == image.shape and out_labels.shape == labels.shape
        assert out_weights is None
        assert set(np.unique(out_labels)) <= {0, 3, 7}


def test_grey_value_jitter_changes_only_the_image(blobs):
    image, labels = blobs
    weights = np.ones(labels.shape, np.float32)
    out_image, out_labels, out_weights = augment_sample(
        image, labels, weights, rng=5, elastic=False, flip=False, rotate=False, contrast=0.5, brightness=0.2
    )
    np.testing.assert_array_equal(out_labels, labels)
    np.testing.assert_array_equal(out_weights, weights)
    assert not np.allclose(out_image, image)
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    # Contrast/brightness is monotone: the two grey levels keep their order.
    assert out_image[labels > 0].min() > out_image[labels == 0].max()
    out8, _, _ = augment_sample((image * 255).astype(np.uint8), labels, rng=5, elastic=False, flip=False, rotate=False)
    assert out8.dtype == np.uint8


def test_full_augmentation_is_reproducible(blobs):
    image, labels = blobs
    a = augment_sample(image, labels, rng=11)
    b = augment_sample(image, labels, rng=11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
    "kwargs",
    [dict(labels=np.zeros((10, 10), np.uint8)), dict(weights=np.zeros((96, 81), np.float32))],
)
def test_mismatched_shapes_are_rejected(blobs, kwargs):
    image, labels = blobs
    arguments = dict(labels=labels, weights=None) | kwargs
    with pytest.raises(ValueError, match="got"):
        elastic_deform(image, arguments["labels"], weights=arguments["weights"])
    with pytest.raises(ValueError, match="got"):
        augment_sample(image, arguments["labels"], arguments["weights"])


def test_bad_grid_sigma_rng_are_rejected(blobs):
    image, labels = blobs
    with pytest.raises(ValueError):
        elastic_deform(image, labels, grid=1)
    with pytest.raises(ValueError):
        elastic_deform(image, labels, sigma=-1)
    with pytest.raises(TypeError):
        elastic_deform(image, labels, rng="seed")


@pytest.mark.parametrize("grid", [3, 5])
def test_separable_displacement_equals_2d_bicubic_interpolation(grid):
    from unet_tutorial.augment import _cubic_interpolation_matrix

    coarse = np.random.default_rng(grid).normal(0, 10, (grid, grid))
    rows, cols = _cubic_interpolation_matrix(57, grid), _cubic_interpolation_matrix(40, grid)
    lattice = np.stack(np.meshgrid(np.linspace(0, grid - 1, 57), np.linspace(0, grid - 1, 40), indexing="ij"))
    reference = ndimage.map_coordinates(coarse, lattice, order=3, mode="mirror")
    np.testing.assert_allclose(rows @ coarse @ cols.T, reference, atol=1e-10)
    # The interpolated field passes through the lattice values (corners here).
    assert (rows @ coarse @ cols.T)[0, 0] == pytest.approx(coarse[0, 0])
    assert (rows @ coarse @ cols.T)[-1, -1] == pytest.approx(coarse[-1, -1])


# -- the fast CPU path (OpenCV) against the reference (scipy) -------------------------------------------------------


@pytest.fixture
def smooth():
    """(image, labels, weights): a smooth 96x80 image in [0, 1]; labels 0/3/7 and weights follow its grey value."""
    rows, cols = np.indices((96, 80))
    image = (0.5 + 0.3 * np.sin(rows / 7.0) * np.cos(cols / 9.0)).astype(np.float32)
    labels = np.where(image > 0.6, 7, np.where(image < 0.4, 3, 0)).astype(np.int32)
    weights = np.choose(np.searchsorted([3, 7], labels), [np.float32(0.5), np.float32(2.0), np.float32(4.0)])
    return image, labels, weights.astype(np.float32)


def _away_from_label_edges(labels):
    """Pixels whose 3x3 neighbourhood holds one label (a nearest lookup cannot flip there by a rounding)."""
    return ndimage.maximum_filter(labels, 3) == ndimage.minimum_filter(labels, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_opencv_warp_agrees_with_the_reference_on_the_same_field(smooth, seed):
    image, labels, weights = smooth
    reference = elastic_deform(image, labels, rng=seed, weights=weights, method="scipy")
    fast = elastic_deform(image, labels, rng=seed, weights=weights, method="opencv")
    assert np.abs(reference[0] - image).mean() * 255 > 5  # the field really moved the image
    assert np.abs(fast[0] - reference[0]).mean() * 255 < 1.0  # under one grey level
    interior = _away_from_label_edges(reference[1])
    assert interior.mean() > 0.5
    np.testing.assert_array_equal(fast[1][interior], reference[1][interior])
    np.testing.assert_array_equal(fast[2][interior], reference[2][interior])
    assert (fast[1] != reference[1]).mean() < 0.01
    for out, given in zip(fast, (image, labels, weights)):
        assert out.shape == given.shape and out.dtype == given.dtype


def test_opencv_warp_keeps_values_dtypes_and_the_identity(blobs):
    image, labels = blobs
    weights = np.where(labels > 0, 2.5, 0.5).astype(np.float32)
    same = elastic_deform(image, labels, sigma=0.0, rng=0, weights=weights, method="opencv")
    np.testing.assert_array_equal(same[0], image)
    np.testing.assert_array_equal(same[1], labels)
    for dtype in (np.uint8, np.int64, bool):
        given = (labels > 0) if dtype is bool else labels.astype(dtype)
        out_image, out_labels, out_weights = elastic_deform(image, given, rng=4, weights=weights, method="opencv")
        assert out_labels.dtype == given.dtype
        assert set(np.unique(out_labels)) <= set(np.unique(given))
        assert set(np.unique(out_weights)) <= {0.5, 2.5}
        assert out_image.min() >= 0.2 - 1e-6 and out_image.max() <= 0.8 + 1e-6  # the cubic's overshoot clipped
    rgb8 = (np.stack([image, 1 - image, image], axis=-1) * 255).astype(np.uint8)
    out, out_labels, _ = elastic_deform(rgb8, labels, rng=3, method="opencv")
    assert out.dtype == np.uint8 and out.shape == rgb8.shape
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert ((out[..., 0] > 127) != (out_labels > 0)).mean() < 0.01


def test_mirrored_border_matches_the_reference(smooth):
    """A shift of 12 px reads outside the image on one side: OpenCV's REFLECT_101 must mirror as scipy's 'mirror'."""
    from unet_tutorial.augment import _resample_image
    from unet_tutorial.augment_opencv import remap_sample

    image, labels, weights = smooth
    field = np.zeros((2,) + labels.shape)
    field[0], field[1] = -12.0, 7.5
    reference = _resample_image(image, np.indices(labels.shape) + field)
    fast = remap_sample(image, labels, weights, field)[0]
    np.testing.assert_allclose(fast[:12], reference[:12], atol=2 / 255)


def test_augment_sample_uses_the_fast_path_by_default(smooth):
    image, labels, weights = smooth
    default = augment_sample(image, labels, weights, rng=9)
    fast = augment_sample(image, labels, weights, rng=9, method="opencv")
    reference = augment_sample(image, labels, weights, rng=9, method="scipy")
    for a, b in zip(default, fast):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(default[0], reference[0])
    # the same seed draws the same deformation, flips and jitter with either resampler
    assert np.abs(default[0] - reference[0]).mean() * 255 < 1.0
    with pytest.raises(ValueError, match="method must be one of"):
        augment_sample(image, labels, rng=0, method="cv2")
    with pytest.raises(ValueError, match="method must be one of"):
        elastic_deform(image, labels, rng=0, method="fast")


def test_flips_and_rotations_folded_into_the_warp_give_the_warp_flipped_and_rotated(smooth):
    """The fast path flips/rotates the positions it reads; that must equal flipping/rotating the warped arrays."""
    image, labels, weights = (array[:80, :80] for array in smooth)  # square: all four quarter turns
    for seed in range(12):
        out = augment_sample(image, labels, weights, rng=seed, intensity=False, method="opencv")
        rng = np.random.default_rng(seed)  # the same draws, in augment_sample's order
        arrays = list(elastic_deform(image, labels, rng=rng, weights=weights, method="opencv"))
        for axis in (0, 1):
            if rng.random() < 0.5:
                arrays = [np.flip(a, axis=axis) for a in arrays]
        turns = int(rng.integers(4))
        for got, expected in zip(out, arrays):
            np.testing.assert_array_equal(got, np.rot90(expected, turns))


@pytest.mark.parametrize("method", ["opencv", "scipy"])
@pytest.mark.parametrize("elastic", [True, False])
def test_label_border_returns_the_centre_of_labels_and_weights(smooth, method, elastic):
    image, labels, weights = smooth
    size = min(labels.shape)
    image, labels, weights = image[:size, :size], labels[:size, :size], weights[:size, :size]
    whole = augment_sample(image, labels, weights, rng=3, elastic=elastic, method=method)
    centre = augment_sample(image, labels, weights, rng=3, elastic=elastic, method=method, label_border=7)
    np.testing.assert_array_equal(centre[0], whole[0])  # the image keeps its context
    np.testing.assert_array_equal(centre[1], whole[1][7:-7, 7:-7])
    np.testing.assert_array_equal(centre[2], whole[2][7:-7, 7:-7])
    with pytest.raises(ValueError, match="label_border"):
        augment_sample(image, labels, weights, rng=3, label_border=size // 2)


@pytest.mark.parametrize("shape", [(40, 40), (30, 44)])
def test_oriented_positions_are_the_turned_maps(shape):
    """The thin-factor maps equal the displaced pixel grid flipped and rotated by numpy."""
    from unet_tutorial.augment import _coarse_displacements, _positions, _spread
    from unet_tutorial.augment_opencv import oriented_positions

    coarse = _coarse_displacements(3, 10.0, np.random.default_rng(4))
    plain = _positions(_spread(coarse, shape, np.float64))
    turns = (0, 1, 2, 3) if shape[0] == shape[1] else (0, 2)
    for flips in ((), (0,), (1,), (0, 1)):
        for quarter_turns in turns:
            for got, expected in zip(oriented_positions(coarse, shape, flips, quarter_turns), plain):
                for axis in flips:
                    expected = np.flip(expected, axis)
                expected = np.rot90(expected, quarter_turns)
                assert got.dtype == np.float32 and got.flags.c_contiguous
                np.testing.assert_allclose(got, expected, atol=1e-3)
