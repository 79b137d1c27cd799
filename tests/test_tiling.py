"""Tests for mirror padding and overlap-tile prediction (paper Fig. 2)."""

import keras
import numpy as np
import pytest

from unet_tutorial import build_unet, shapes
from unet_tutorial.tiling import dihedral_transforms, mirror_pad, predict_tiled


def _mirror_index(i, n):
    """Index into a length-n axis for position i of its endless mirror extension."""
    period = 2 * (n - 1)
    j = i % period
    return period - j if j >= n else j


def _twin_models(depth, tile, whole, padding="valid", base_filters=4):
    """A model for tiles and one for the whole image, with the same weights."""
    keras.utils.set_random_seed(depth)
    small = build_unet((tile, tile, 1), base_filters=base_filters, depth=depth, padding=padding, dropout=0.0)
    large = build_unet((whole, whole, 1), base_filters=base_filters, depth=depth, padding=padding, dropout=0.0)
    large.set_weights(small.get_weights())
    return small, large


def _whole_image_reference(model, image, border, size):
    """The model applied once to the image mirror-padded by ``border`` (and up to ``size``)."""
    height, width = image.shape
    padded = mirror_pad(image, ((border, size - height - border), (border, size - width - border)))
    return model.predict_on_batch(padded[None, ..., None])[0]


@pytest.mark.parametrize("border", [1, 2, 7, 20])
def test_mirror_pad_reflects_without_repeating_the_edge(border):
    image = np.arange(3 * 4).reshape(3, 4)
    padded = mirror_pad(image, border)
    assert padded.shape == (3 + 2 * border, 4 + 2 * border)
    for r in range(padded.shape[0]):
        for c in range(padded.shape[1]):
            assert padded[r, c] == image[_mirror_index(r - border, 3), _mirror_index(c - border, 4)]
    if border == 1:  # a b c | b: the edge pixel is not repeated
        np.testing.assert_array_equal(padded[0, 1:-1], image[1])


def test_mirror_pad_asymmetric_and_channels():
    image = np.random.default_rng(0).random((5, 6, 3))
    padded = mirror_pad(image, ((1, 9), (0, 2)))
    assert padded.shape == (15, 8, 3)
    np.testing.assert_array_equal(padded[1:6, :6], image)
    np.testing.assert_array_equal(padded[6, :6], image[3])  # first mirrored row below
    with pytest.raises(ValueError, match="got"):
        mirror_pad(image, -1)
    with pytest.raises(ValueError, match="got"):
        mirror_pad(np.zeros((2, 2, 2, 2)), 1)


@pytest.mark.parametrize("depth, height, width", [(2, 47, 59), (2, 100, 29), (4, 35, 43)])
def test_predict_tiled_equals_whole_image_prediction(depth, height, width):
    """Overlap-tile output == the network applied once to the whole mirror-padded image."""
    tile = shapes.valid_input_sizes(40, 200, depth=depth)[2]
    step = shapes.output_size(tile, depth=depth)
    border = shapes.context_border(depth)
    assert height % step and width % step  # sizes that are not multiples of the tile
    whole = shapes.nearest_valid_input(max(height, width) + 2 * border, depth=depth)[1]
    small, large = _twin_models(depth, tile, whole)
    image = np.random.default_rng(1).random((height, width)).astype(np.float32)
    tiled = predict_tiled(small, image, batch_size=3)
    reference = _whole_image_reference(large, image, border, whole)[:height, :width]
    assert tiled.shape == (height, width, 2) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, reference, atol=2e-5)


def test_stepping_by_the_output_size_would_leave_seams():
    """Why the tiles step by a multiple of the pooling factor: depth 4, output 20 = 4 mod 8."""
    depth, tile = 4, shapes.valid_input_sizes(40, 200, depth=4)[2]
    out, border = shapes.output_size(tile, depth=depth), shapes.context_border(depth)
    assert out % 2 ** (depth - 1)
    whole = shapes.nearest_valid_input(2 * out + 2 * border, depth=depth)[1]
    small, large = _twin_models(depth, tile, whole)
    image = np.random.default_rng(2).random((2 * out, 2 * out)).astype(np.float32)
    reference = _whole_image_reference(large, image, border, whole)[: 2 * out, : 2 * out]
    padded = mirror_pad(image, ((border, tile), (border, tile)))
    naive = np.zeros_like(reference)
    for r in (0, out):
        for c in (0, out):
            naive[r : r + out, c : c + out] = small.predict_on_batch(padded[None, r : r + tile, c : c + tile, None])[0]
    assert np.abs(naive - reference).max() > 1e-3
    np.testing.assert_allclose(predict_tiled(small, image), reference, atol=2e-5)


def test_same_padding_model_matches_whole_image_inside_its_context():
    keras.utils.set_random_seed(5)
    model = build_unet((None, None, 1), base_filters=4, depth=2, padding="same", dropout=0.0)
    image = np.random.default_rng(3).random((70, 53)).astype(np.float32)
    tiled = predict_tiled(model, image, tile_size=96)
    margin = 96 // 8  # the context each same-padding tile keeps on every side
    padded = mirror_pad(image, ((margin, 96 - 70 - margin), (margin, 96 - 53 - margin)))
    # A same-padding output is as big as its input: cut the image's part back out.
    reference = model.predict_on_batch(padded[None, ..., None])[0][margin : margin + 70, margin : margin + 53]
    np.testing.assert_allclose(tiled, reference, atol=2e-5)


def test_test_time_augmentation_is_equivariant_and_normalised():
    keras.utils.set_random_seed(6)
    model = build_unet((44, 44, 1), base_filters=4, depth=2, dropout=0.0)
    image = np.random.default_rng(4).random((37, 50)).astype(np.float32)
    plain = predict_tiled(model, image)
    averaged = predict_tiled(model, image, tta=True)
    assert averaged.shape == (37, 50, 2)
    assert averaged.min() >= 0 and averaged.max() <= 1
    np.testing.assert_allclose(averaged.sum(-1), 1.0, atol=1e-5)
    assert np.abs(averaged - plain).max() > 1e-4  # a random network is not rotation invariant ...
    for forward, _ in dihedral_transforms():
        # ... but its 8-fold average is: transforming the input transforms the output.
        transformed = predict_tiled(model, np.ascontiguousarray(forward(image)), tta=True)
        np.testing.assert_allclose(transformed, forward(averaged), atol=2e-5)
    # (A constant image is not a fixed point: the 2x2 up-convolution paints a
    # pattern of period 2 even on a constant input, and rotation moves it.)


def test_uint8_is_scaled_and_channels_are_accepted():
    keras.utils.set_random_seed(7)
    model = build_unet((44, 44, 1), base_filters=4, depth=2, dropout=0.0)
    image = np.random.default_rng(5).integers(0, 256, (30, 41)).astype(np.uint8)
    from_uint8 = predict_tiled(model, image)
    np.testing.assert_allclose(from_uint8, predict_tiled(model, image[..., None] / 255.0), atol=1e-6)
    with pytest.raises(ValueError, match="channel"):
        predict_tiled(model, np.zeros((30, 30, 3), np.float32))


def test_tile_size_errors():
    model = build_unet((None, None, 1), base_filters=4, depth=2, dropout=0.0)
    image = np.zeros((30, 30), np.float32)
    with pytest.raises(ValueError, match="tile_size"):
        predict_tiled(model, image)
    with pytest.raises(ValueError, match="Nearest valid input sizes"):
        predict_tiled(model, image, tile_size=45)
    fixed = build_unet((44, 44, 1), base_filters=4, depth=2, dropout=0.0)
    with pytest.raises(ValueError, match="tile_size"):
        predict_tiled(fixed, image, tile_size=48)
    # With a free input shape any valid tile size works and gives the same result.
    keras.utils.set_random_seed(8)
    free = build_unet((None, None, 1), base_filters=4, depth=2, dropout=0.0)
    fixed.set_weights(free.get_weights())
    np.testing.assert_allclose(predict_tiled(free, image + 0.5, tile_size=44), predict_tiled(fixed, image + 0.5), atol=1e-5)


def test_plain_keras_model_with_same_padding():
    """A model not built by build_unet: depth and padding are read from its layers."""
    keras.utils.set_random_seed(9)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D(2)(x)
    outputs = keras.layers.Conv2D(3, 3, padding="same", activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    image = np.random.default_rng(6).random((50, 77)).astype(np.float32)
    tiled = predict_tiled(model, image, tile_size=64)
    margin = 64 // 8  # receptive field radius 5 < margin: tiles see all the context they need
    padded = mirror_pad(image, ((margin, 72 - 50 - margin), (margin, 96 - 77 - margin)))
    reference = model.predict_on_batch(padded[None, ..., None])[0][margin : margin + 50, margin : margin + 77]
    assert tiled.shape == (50, 77, 3)
    np.testing.assert_allclose(tiled, reference, atol=2e-5)


def test_as_float_image_is_the_input_rule():
    from unet_tutorial.tiling import as_float_image

    image = as_float_image(np.array([[0, 255], [51, 102]], np.uint8))
    assert image.dtype == np.float32 and image.shape == (2, 2, 1)
    np.testing.assert_allclose(image[..., 0], [[0.0, 1.0], [0.2, 0.4]])
    np.testing.assert_array_equal(as_float_image(np.eye(2, dtype=bool))[..., 0], np.eye(2))
    np.testing.assert_array_equal(as_float_image(np.full((2, 2, 3), 0.5)), np.full((2, 2, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"images\[3\] must be \(H, W\) or \(H, W, C\)"):
        as_float_image(np.zeros((2, 2, 2, 2)), "images[3]")
    with pytest.raises(TypeError, match="must hold numbers"):
        as_float_image(np.array([["a"]]))
