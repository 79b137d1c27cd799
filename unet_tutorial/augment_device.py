"""Augmentation on the accelerator: the paper's augmentation of a whole batch in ``keras.ops`` (TensorFlow, JAX).

The same steps as ``augment.augment_sample`` (Ronneberger et al. 2015, Sec. 3.1),
written with ``keras.ops`` only, so that they compile (XLA / ``jax.jit`` /
``tf.function``) and run where the network runs, on the batch already there:

* the elastic deformation's displacement field: N(0, sigma**2) pixels on the
  coarse ``grid`` x ``grid`` lattice, spread to every pixel with the same cubic
  interpolation matrices as the CPU paths (``augment._cubic_interpolation_matrix``);
* the image sampled at the displaced positions with bicubic convolution: a
  gather of the 4 x 4 neighbouring pixels weighted by Keys' cubic kernel
  (a = -0.5; ``keras.ops.image.map_coordinates`` stops at order 1);
* labels and weights from the nearest pixel, so labels keep their class values;
* outside the image, the mirror without the edge pixel (``dcb|abcd|cba``), as
  ``tiling.mirror_pad`` and the CPU paths;
* a random flip of each axis and (square tiles) a random transpose: together the
  8 flips/rotations, each with probability 1/8 as on the CPU. They are applied
  to the array of positions to read, which flips/rotates the result for free;
* the grey-value jitter of the image, for images in [0, 1].

:class:`DeviceAugment` is the Keras layer (its random state is a Keras
``SeedGenerator``, which compiled steps carry along); :func:`augment_batch`
is the function it calls, :func:`warp_batch` its deterministic core.
:func:`augmenting_model` puts the layer in front of a network, with the loss
inside, so that ``model.fit`` augments every batch in the compiled train step
(``train`` does so on a GPU: :func:`on_device`).
"""

from __future__ import annotations

import keras
from keras import ops

from .augment import _cubic_interpolation_matrix

__all__ = ["DeviceAugment", "augment_batch", "augmenting_model", "cubic_weights", "mirror_index", "on_device",
           "warp_batch"]

KEYS_A = -0.5  # Keys (1981): the cubic convolution kernel that is third-order accurate


def cubic_weights(t, a: float = KEYS_A):
    """Keys' cubic-convolution weights of the taps at offsets -1, 0, 1, 2 from floor(position), for t in [0, 1)."""

    def near(s):  # |s| <= 1
        return ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a

    return [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]


def mirror_index(index, size: int):
    """Any integer index mirrored into 0..size-1 without repeating the edge (period 2 * (size - 1))."""
    period = 2 * (size - 1)
    index = ops.mod(ops.abs(index), period)
    return ops.where(index >= size, period - index, index)


def _gather(planes, rows, cols, width: int):
    """planes (B, H*W) values at integer (rows, cols) (B, h, w) -> (B, h, w)."""
    flat = ops.reshape(rows * width + cols, (ops.shape(rows)[0], -1))
    return ops.reshape(ops.take_along_axis(planes, flat, axis=1), ops.shape(rows))


def _bicubic(images, rows, cols):
    """images (B, H, W, C) float sampled at real positions (rows, cols) (B, h, w): 16 gathers per channel."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    top, left = ops.floor(rows), ops.floor(cols)
    row_weights, col_weights = cubic_weights(rows - top), cubic_weights(cols - left)
    top, left = ops.cast(top, "int32"), ops.cast(left, "int32")
    row_taps = [mirror_index(top + k - 1, height) for k in range(4)]
    col_taps = [mirror_index(left + k - 1, width) for k in range(4)]
    out = []
    for c in range(channels):
        plane = ops.reshape(images[..., c], (-1, height * width))
        value = 0.0
        for i in range(4):
            for j in range(4):
                value = value + row_weights[i] * col_weights[j] * _gather(plane, row_taps[i], col_taps[j], width)
        out.append(value)
    return ops.stack(out, axis=-1)


def _nearest(array, rows, cols):
    """array (B, H, W) (any dtype) at the nearest pixels of (rows, cols), mirrored at the edges."""
    height, width = array.shape[1], array.shape[2]
    rows = mirror_index(ops.cast(ops.round(rows), "int32"), height)
    cols = mirror_index(ops.cast(ops.round(cols), "int32"), width)
    return _gather(ops.reshape(array, (-1, height * width)), rows, cols, width)


def _per_sample(flags, array):
    """flags (B,) bool broadcast over the other axes of array."""
    return ops.reshape(flags, (-1,) + (1,) * (len(array.shape) - 1))


def _dihedral(rows, cols, seed, *, flip: bool, rotate: bool):
    """A random flip of each axis and (square) a random transpose of the position arrays, per sample."""
    batch = ops.shape(rows)[0]
    for axis in (1, 2) if flip else ():
        coin = keras.random.uniform((batch,), seed=seed) < 0.5
        rows = ops.where(_per_sample(coin, rows), ops.flip(rows, axis=axis), rows)
        cols = ops.where(_per_sample(coin, cols), ops.flip(cols, axis=axis), cols)
    if rotate and rows.shape[1] == rows.shape[2]:  # flips + transpose = the 8 rotations/flips
        coin = keras.random.uniform((batch,), seed=seed) < 0.5
        rows = ops.where(_per_sample(coin, rows), ops.transpose(rows, (0, 2, 1)), rows)
        cols = ops.where(_per_sample(coin, cols), ops.transpose(cols, (0, 2, 1)), cols)
    elif rotate:  # non-square: 0 or 180 degrees, as on the CPU
        coin = keras.random.uniform((batch,), seed=seed) < 0.5
        rows = ops.where(_per_sample(coin, rows), ops.flip(rows, axis=(1, 2)), rows)
        cols = ops.where(_per_sample(coin, cols), ops.flip(cols, axis=(1, 2)), cols)
    return rows, cols


def _positions(shape, batch):
    """The pixel grid (rows, cols), each (B, H, W) float32."""
    height, width = shape
    rows = ops.cast(ops.broadcast_to(ops.arange(height)[None, :, None], (batch, height, width)), "float32")
    cols = ops.cast(ops.broadcast_to(ops.arange(width)[None, None, :], (batch, height, width)), "float32")
    return rows, cols


def _check_images(images):
    images = ops.convert_to_tensor(images)
    if len(images.shape) != 4 or images.shape[1] is None or images.shape[2] is None:
        raise ValueError(f"images must be (B, H, W, C) with a known H and W, got shape {images.shape}.")
    if min(images.shape[1], images.shape[2]) < 2:
        raise ValueError(f"images must be at least 2 x 2 pixels, got shape {images.shape}.")
    return images


def _centre(array, border: int):
    """(B, H, W, ...) without ``border`` pixels on each side of H and W."""
    height, width = array.shape[1], array.shape[2]
    return array[:, border : height - border, border : width - border]


def _sample(images, labels, weights, rows, cols, label_border: int = 0):
    """Image bicubic (clipped to each sample's input range), labels and weights nearest, at (rows, cols).

    Labels and weights are read only at the centre positions, without ``label_border`` pixels on each side.
    """
    floats = ops.cast(images, "float32")
    low = ops.min(floats, axis=(1, 2, 3), keepdims=True)
    high = ops.max(floats, axis=(1, 2, 3), keepdims=True)
    out = ops.minimum(ops.maximum(_bicubic(floats, rows, cols), low), high)  # the cubic overshoots: clip
    rows, cols = _centre(rows, label_border), _centre(cols, label_border)
    out_labels = _nearest(ops.convert_to_tensor(labels), rows, cols)
    out_weights = None if weights is None else _nearest(ops.convert_to_tensor(weights), rows, cols)
    return out, out_labels, out_weights


def warp_batch(images, labels, weights, field):
    """Warp a batch with a given displacement field (B, 2, H, W) (dy, dx): output (y, x) reads (y + dy, x + dx).

    The deterministic core of :func:`augment_batch`, e.g. to compare with
    ``augment.elastic_deform`` on the same field (``augment.displacement_field``).
    """
    images = _check_images(images)
    field = ops.cast(ops.convert_to_tensor(field), "float32")
    rows, cols = _positions(images.shape[1:3], ops.shape(images)[0])
    out, out_labels, out_weights = _sample(images, labels, weights, rows + field[:, 0], cols + field[:, 1])
    return ops.cast(out, images.dtype), out_labels, out_weights


def augment_batch(images, labels, weights=None, seed=None, *, elastic: bool = True, flip: bool = True,
                  rotate: bool = True, intensity: bool = True, grid: int = 3, sigma: float = 10.0,
                  brightness: float = 0.1, contrast: float = 0.2, label_border: int = 0):
    """Augment a batch on the device: (images (B, H, W, C) float in [0, 1], labels (B, H, W), weights (B, H, W)).

    ``seed``: an int, a ``keras.random.SeedGenerator`` (inside a compiled step:
    the one of :class:`DeviceAugment`) or None. ``label_border``: return labels
    and weights without this many pixels on each side (the network's output
    region of a valid-padding tile), as ``augment.augment_sample`` does. Returns
    (images, labels, weights) with the input dtypes; weights None if not given.
    """
    images = _check_images(images)
    if isinstance(seed, int) or seed is None:
        seed = keras.random.SeedGenerator(seed)
    height, width = images.shape[1], images.shape[2]
    if not 0 <= label_border < min(height, width) / 2:
        raise ValueError(f"label_border must leave labels to return: got {label_border} for {height}x{width} tiles.")
    batch = ops.shape(images)[0]
    rows, cols = _positions((height, width), batch)
    if elastic:
        coarse = keras.random.normal((batch, 2, grid, grid), stddev=sigma, seed=seed)
        row_matrix = ops.convert_to_tensor(_cubic_interpolation_matrix(height, grid), "float32")
        col_matrix = ops.convert_to_tensor(_cubic_interpolation_matrix(width, grid), "float32")
        field = ops.einsum("hi,bcij,wj->bchw", row_matrix, coarse, col_matrix)  # (B, 2, H, W)
        rows, cols = rows + field[:, 0], cols + field[:, 1]
    rows, cols = _dihedral(rows, cols, seed, flip=flip, rotate=rotate)
    out, out_labels, out_weights = _sample(images, labels, weights, rows, cols, label_border)
    if intensity:
        factor = keras.random.uniform((batch, 1, 1, 1), 1.0 - contrast, 1.0 + contrast, seed=seed)
        shift = keras.random.uniform((batch, 1, 1, 1), -brightness, brightness, seed=seed)
        mean = ops.mean(out, axis=(1, 2, 3), keepdims=True)
        out = ops.clip((out - mean) * factor + mean + shift, 0.0, 1.0)
    return ops.cast(out, images.dtype), out_labels, out_weights


@keras.saving.register_keras_serializable(package="unet_tutorial")
class DeviceAugment(keras.layers.Layer):
    """``augment_batch`` as a layer: ``DeviceAugment(config)([x, y, w])`` -> ``[x', y', w']``.

    Args:
        augmentation: a :class:`config.AugmentConfig` (its ``method`` is not used here).
        seed: seed of the layer's ``SeedGenerator``.
        label_border: labels and weights come back without this many pixels on each side.
    """

    def __init__(self, augmentation=None, seed: int | None = None, label_border: int = 0, **kwargs):
        super().__init__(**kwargs)
        from .config import AugmentConfig  # noqa: PLC0415

        if isinstance(augmentation, dict):  # from get_config (a saved model)
            augmentation = AugmentConfig(**augmentation)
        self.augmentation = augmentation or AugmentConfig()
        self.seed, self.label_border = seed, int(label_border)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        images, labels, weights = inputs
        a, border = self.augmentation, self.label_border
        if not a.enabled:
            return [images, _centre(labels, border), _centre(weights, border)]
        return list(augment_batch(images, labels, weights, self.seed_generator, elastic=a.elastic, flip=a.flip,
                                  rotate=a.rotate, intensity=a.intensity, grid=a.elastic_grid,
                                  sigma=a.elastic_sigma, label_border=border))

    def compute_output_spec(self, inputs):
        images, labels, weights = inputs
        border = self.label_border
        centre = tuple(None if size is None else size - 2 * border for size in labels.shape[1:3])
        return [keras.KerasTensor(images.shape, images.dtype),
                keras.KerasTensor((labels.shape[0], *centre), labels.dtype),
                keras.KerasTensor((weights.shape[0], *centre), weights.dtype)]

    def get_config(self):
        import dataclasses  # noqa: PLC0415

        return {**super().get_config(), "augmentation": dataclasses.asdict(self.augmentation), "seed": self.seed,
                "label_border": self.label_border}


def on_device(augmentation) -> bool:
    """Whether ``train`` augments on the device (in the compiled train step) rather than in the CPU pipeline.

    The one rule: ``AugmentConfig.method`` "device" always; "auto" when the
    backend trains on a GPU (the CPU's cores are then better left to feeding
    it); otherwise ("opencv", "scipy", or "auto" on a CPU) the pipeline's
    workers augment each tile with ``augment.augment_sample``.
    """
    if not augmentation.enabled:
        return False
    if augmentation.method == "device":
        return True
    from .distribute import gpu_available  # noqa: PLC0415

    return augmentation.method == "auto" and gpu_available()


def augmenting_model(network: keras.Model, tiles, augmentation, seed: int | None = None) -> keras.Model:
    """``network`` with the paper's augmentation in front and its weighted loss inside: what ``fit`` trains on a GPU.

    Inputs: whole T x T windows as the pipeline cuts them, not yet augmented
    (``SegmentationDataset(..., on_device=True)``): tiles (B, T, T, C), labels
    (B, T, T) and weights (B, T, T). :class:`DeviceAugment` augments the three
    together and keeps the labels and weights of the output region; the
    network predicts; :class:`losses.AddWeightedCrossEntropy` adds Eq. 1's loss
    of that prediction. Compile it without a loss. ``network`` is shared, not
    copied: its weights are the ones trained.

    Args:
        network: the U-Net (``model.build_unet``).
        tiles: a :class:`config.TileConfig` (T and the border (T - t) / 2).
        augmentation: a :class:`config.AugmentConfig`.
        seed: seed of the augmentation's random state.
    """
    from .losses import AddWeightedCrossEntropy  # noqa: PLC0415

    size, channels = tiles.tile_size, network.input_shape[-1]
    inputs = [keras.Input((size, size, channels), name="tiles"),
              keras.Input((size, size), dtype="int32", name="labels"),
              keras.Input((size, size), name="weights")]
    # float32 whatever the dtype policy: bicubic sampling in float16 would lose grey levels
    images, labels, weights = DeviceAugment(augmentation, seed, label_border=tiles.border, dtype="float32",
                                            name="augment")(inputs)
    probabilities = AddWeightedCrossEntropy(dtype="float32", name="weighted_cross_entropy")(
        [network(images), labels, weights])
    return keras.Model(inputs, probabilities, name="unet_with_augmentation")


def network_of(model: keras.Model) -> keras.Model:
    """The U-Net inside a model from :func:`augmenting_model` (a saved one too); any other model itself."""
    if model.name != "unet_with_augmentation":
        return model
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))
