"""Tests of the tile input pipeline (unet_tutorial.pipeline.SegmentationDataset)."""

from __future__ import annotations

import numpy as np
import pytest

from unet_tutorial import shapes
from unet_tutorial.config import AugmentConfig, TileConfig, WeightMapConfig
from unet_tutorial.pipeline import SegmentationDataset, synthetic_cells

DEPTH, TILE = 2, 48  # a valid input size for depth 2 (output 8 px smaller on each side)
TILES = TileConfig(TILE, DEPTH)


def _image_and_labels(n=3, size=64, seed=0):
    """Images whose class label is a function of the pixel value: label = image > 0.5."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size)).astype(np.float32)
    return images, (images > 0.5).astype(np.uint8)


def test_batches_have_the_agreed_shapes_and_dtypes():
    images, labels = _image_and_labels()
    dataset = SegmentationDataset(images, labels, tiles=TILES, batch_size=2, tiles_per_epoch=5)
    t = shapes.output_size(TILE, depth=DEPTH)
    x, y, w = dataset[0]
    assert x.shape == (2, TILE, TILE, 1) and x.dtype == np.float32
    assert y.shape == (2, t, t) and y.dtype == np.int32
    assert w.shape == (2, t, t) and w.dtype == np.float32
    assert len(dataset) == 3  # ceil(5 / 2) full batches
    assert 0.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize("augment", [False, True])
def test_centre_of_the_input_tile_matches_the_labels(augment):
    """The label is a function of the pixel, so the centre crop of x must reproduce y exactly.

    Flips and rotations must move x and y together; the grey-value jitter (which
    changes x only) and the elastic deformation (cubic vs nearest resampling) are
    off here and tested below.
    """
    images, labels = _image_and_labels(seed=1)
    dataset = SegmentationDataset(
        images, labels, tiles=TILES, batch_size=4, tiles_per_epoch=8,
        augmentation=AugmentConfig(enabled=augment, elastic=False, intensity=False),
        weighting=WeightMapConfig(w0=0.0, class_balance=False), seed=5,
    )
    border = shapes.context_border(DEPTH)
    t = shapes.output_size(TILE, depth=DEPTH)
    for index in range(len(dataset)):
        x, y, w = dataset[index]
        centre = x[:, border : border + t, border : border + t, 0]
        np.testing.assert_array_equal((centre > 0.5).astype(np.int32), y)
        np.testing.assert_array_equal(w, 1.0)


def test_elastic_deformation_keeps_image_and_labels_together():
    """Smooth image (a disc) with its mask: after elastic deformation the labels still follow the image."""
    size = 96
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - 48) ** 2 + (xx - 50) ** 2 < 30**2).astype(np.float32)
    images = np.stack([disc, 1 - disc])
    labels = (images > 0.5).astype(np.uint8)
    dataset = SegmentationDataset(
        images, labels, tiles=TILES, batch_size=4, tiles_per_epoch=8,
        augmentation=AugmentConfig(elastic=True, intensity=False), seed=3,
    )
    border, t = shapes.context_border(DEPTH), shapes.output_size(TILE, depth=DEPTH)
    for index in range(len(dataset)):
        x, y, _ = dataset[index]
        centre = x[:, border : border + t, border : border + t, 0]
        agreement = np.mean((centre > 0.5) == (y == 1))
        assert agreement > 0.99  # cubic vs nearest differ only at a few edge pixels


def test_the_same_seed_gives_the_same_batches_and_epochs_differ():
    images, labels = _image_and_labels()
    make = lambda seed: SegmentationDataset(  # noqa: E731
        images, labels, tiles=TILES, batch_size=2, tiles_per_epoch=4, seed=seed
    )
    a, b, c = make(7), make(7), make(8)
    for index in range(len(a)):
        for part_a, part_b in zip(a[index], b[index]):
            np.testing.assert_array_equal(part_a, part_b)
    assert not np.array_equal(a[0][0], c[0][0])
    first_epoch = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(a[0][0], first_epoch)
    b.set_epoch(1)  # resuming at epoch 1 sees what an uninterrupted run sees
    np.testing.assert_array_equal(a[0][0], b[0][0])


def test_weight_maps_are_computed_from_the_cells():
    images, instances = synthetic_cells(n_images=2, size=64, n_cells=10, seed=2)
    labels = (instances > 0).astype(np.uint8)
    dataset = SegmentationDataset(
        images, labels, instances=instances, tiles=TILES, augmentation=AugmentConfig(enabled=False), batch_size=64
    )
    from unet_tutorial.weights import weight_map

    np.testing.assert_allclose(dataset.weights[1], weight_map(instances[1]), rtol=1e-6)
    given = np.full(labels.shape, 3.0, np.float32)
    fixed = SegmentationDataset(images, labels, given, tiles=TILES)
    np.testing.assert_array_equal(fixed[0][2], 3.0)


def test_uint8_images_are_scaled_to_unit_range():
    images, labels = _image_and_labels()
    scaled = SegmentationDataset((images * 255).astype(np.uint8), labels, tiles=TILES,
                                  augmentation=AugmentConfig(enabled=False))
    assert scaled[0][0].max() <= 1.0 and scaled[0][0].max() > 0.9


def test_threads_give_the_batches_of_a_single_worker():
    """Workers prepare batches in parallel; the batches must not depend on it."""
    import keras

    images, labels = _image_and_labels()
    serial = SegmentationDataset(images, labels, tiles=TILES, batch_size=2, tiles_per_epoch=6, seed=2)
    parallel = SegmentationDataset(
        images, labels, tiles=TILES, batch_size=2, tiles_per_epoch=6, seed=2, workers=2
    )
    inputs = keras.Input((TILE, TILE, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x)(inputs))
    predicted = model.predict(parallel, verbose=0)
    expected = np.concatenate([serial[i][0] for i in range(len(serial))])
    np.testing.assert_array_equal(predicted, expected)


# ----------------------------------------------------------------------------- bad input


def test_mismatched_image_and_label_shapes_are_refused():
    images, labels = _image_and_labels()
    with pytest.raises(ValueError, match=r"labels\[0\] has shape \(60, 64\)"):
        SegmentationDataset(images, labels[:, :60], tiles=TILES)
    with pytest.raises(ValueError, match="3 images but 2 label"):
        SegmentationDataset(images, labels[:2], tiles=TILES)


def test_an_invalid_tile_size_names_the_nearest_valid_ones():
    images, labels = _image_and_labels(size=600)
    with pytest.raises(ValueError, match=r"tile_size=570.*556 or 572"):
        SegmentationDataset(images[:1], labels[:1], tiles=TileConfig(570, 5))


def test_label_values_outside_the_classes_are_refused():
    images, labels = _image_and_labels()
    labels = labels * 255  # raw ISBI values
    with pytest.raises(ValueError, match=r"outside the classes 0..1"):
        SegmentationDataset(images, labels, tiles=TILES)


def test_an_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="empty"):
        SegmentationDataset(np.zeros((0, 64, 64), np.float32), np.zeros((0, 64, 64), np.uint8), tiles=TILES)


def test_images_smaller_than_the_output_tile_are_refused():
    images, labels = _image_and_labels(size=20)
    with pytest.raises(ValueError, match="smaller than the output tile"):
        SegmentationDataset(images, labels, tiles=TILES)


def test_class_balance_over_the_training_set_uses_one_pair_of_class_weights():
    """The paper's w_c: the class frequencies of the whole training set, not of each image."""
    images = np.zeros((2, 64, 64), np.float32)
    labels = np.zeros((2, 64, 64), np.uint8)
    labels[0, :16] = 1  # a quarter cell
    labels[1, :48] = 1  # three quarters cell
    flat = WeightMapConfig(w0=0.0, class_balance_over="training-set")
    dataset = SegmentationDataset(images, labels, tiles=TILES, weighting=flat)
    # half of all training pixels are cell: both classes get weight 1 in both images
    np.testing.assert_allclose(dataset.weights[0], 1.0)
    np.testing.assert_allclose(dataset.weights[1], 1.0)
    per_image = SegmentationDataset(images, labels, tiles=TILES, weighting=WeightMapConfig(w0=0.0))
    assert per_image.weights[0][0, 0] == pytest.approx(2.0)  # the rarer class of that image counts double


def test_the_same_seed_gives_the_same_batches_whatever_the_worker_count():
    """Batches made in parallel (as PyDataset's worker threads make them), in any order, equal the serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    images, instances = synthetic_cells(n_images=3, size=64, seed=2)
    options = dict(tiles=TILES, batch_size=2, tiles_per_epoch=8, seed=4, augmentation=AugmentConfig())
    serial = SegmentationDataset(images, (instances > 0).astype(np.uint8), **options)
    parallel = SegmentationDataset(images, (instances > 0).astype(np.uint8), workers=2, **options)
    expected = [serial[i] for i in range(len(serial))]
    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(reversed(range(len(parallel))), pool.map(parallel.__getitem__, reversed(range(len(parallel))))))
    for index, batch in enumerate(expected):
        for a, b in zip(batch, got[index]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(expected[0][0], expected[1][0])


def test_the_training_default_is_the_fast_warp():
    assert AugmentConfig().method == "auto" and AugmentConfig().sample_options()["method"] == "auto"
    with pytest.raises(ValueError, match="AugmentConfig.method must be one of"):
        AugmentConfig(method="gpu")
    images, instances = synthetic_cells(n_images=2, size=64, seed=1)
    batches = [
        SegmentationDataset(images, (instances > 0).astype(np.uint8), tiles=TILES, batch_size=2, seed=3,
                            augmentation=AugmentConfig(method=method))[0]
        for method in ("auto", "opencv", "scipy")
    ]
    np.testing.assert_array_equal(batches[0][0], batches[1][0])
    assert not np.array_equal(batches[0][0], batches[2][0])
    assert np.abs(batches[0][0] - batches[2][0]).mean() * 255 < 2  # the same draws, another resampler


def test_on_device_batches_are_the_whole_windows_not_augmented():
    images, instances = synthetic_cells(n_images=3, size=96, seed=2)
    tiles = TileConfig(tile_size=92, depth=2)  # 92 -> 76, border 8
    common = dict(instances=instances, tiles=tiles, batch_size=2, tiles_per_epoch=4, seed=7)
    device = SegmentationDataset(images, (instances > 0).astype(np.uint8), on_device=True, **common)
    plain = SegmentationDataset(images, (instances > 0).astype(np.uint8), augmentation=AugmentConfig(enabled=False),
                                **common)
    (x, y, w), = device[1]
    px, py, pw = plain[1]
    assert x.shape == (2, 92, 92, 1) and y.shape == (2, 92, 92) and w.shape == (2, 92, 92)
    np.testing.assert_array_equal(x, px)  # the same windows, left for the device to augment
    np.testing.assert_array_equal(y[:, 8:-8, 8:-8], py)
    np.testing.assert_array_equal(w[:, 8:-8, 8:-8], pw)
