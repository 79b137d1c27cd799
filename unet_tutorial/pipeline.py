"""The training input pipeline: random overlap tiles, weight maps, augmentation.

Ronneberger et al. 2015, Sec. 3: the network is trained on input tiles cut from
the images, each with the labels and the weight map (Eq. 2) of its *output*
region only; missing context at the image border is filled by mirroring (Fig. 2);
the training set is enlarged on the fly by elastic deformations and other
augmentation (Sec. 3.1). :class:`SegmentationDataset` does all of that and hands
``model.fit`` batches ``(x, y, w)``:

* ``x`` (B, T, T, C) float32 in [0, 1]: input tiles of a valid size T;
* ``y`` (B, t, t) int32 class indices of the output region, t = output_size(T);
* ``w`` (B, t, t) float32 weight map of the same region (Keras ``sample_weight``).

How a training tile is made: pick an image (each image once per round, in a
shuffled order), pick a random output region of t x t pixels inside it, cut the
T x T input tile around it from the mirror-padded image (and the same T x T
window from the mirror-padded labels and weight map), augment the three together
(``augment.augment_sample``), then keep the central t x t of labels and weights.
Augmenting the whole T x T window keeps image and labels aligned everywhere,
also where the deformation pulls pixels in from the mirrored border.

Randomness comes from ``numpy.random.default_rng([seed, epoch, index])``: batch
``index`` of ``epoch`` is the same in every run with the same seed, whatever the
number of workers, so a resumed run sees the tiles an uninterrupted run would.

Only numpy/scipy are used, so the dataset works on every Keras backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from scipy import ndimage

from . import shapes
from .augment import augment_sample
from .tiling import mirror_pad
from .weights import weight_map

__all__ = ["SegmentationDataset", "synthetic_cells"]


def _as_image_list(images, name="images"):
    """A list of (H, W, C) float32 images in [0, 1] from an array or a list."""
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"{name} must be (N, H, W) or (N, H, W, C), got shape {images.shape}.")
        images = list(images)
    result = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise ValueError(f"{name}[{i}] must be (H, W) or (H, W, C), got shape {image.shape}.")
        if np.issubdtype(image.dtype, np.integer):
            image = image / np.iinfo(image.dtype).max  # uint8 -> [0, 1]
        elif image.dtype == bool:
            image = image.astype(np.float32)
        elif not np.issubdtype(image.dtype, np.floating):
            raise TypeError(f"{name}[{i}] must hold numbers, got dtype {image.dtype}.")
        result.append(np.ascontiguousarray(image, dtype=np.float32))
    return result


def _check_labels(images, labels, n_classes):
    """Integer (H, W) label images with values in [0, n_classes), one per image."""
    if len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} label images; give one label image per image.")
    checked = []
    for i, (image, label) in enumerate(zip(images, labels)):
        label = np.asarray(label)
        if label.shape != image.shape[:2]:
            raise ValueError(
                f"labels[{i}] has shape {label.shape} but images[{i}] has height and width "
                f"{image.shape[:2]}; each label image must have its image's size."
            )
        if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
            raise TypeError(f"labels[{i}] must hold integer class indices, got dtype {label.dtype}.")
        low, high = int(label.min()), int(label.max())
        if low < 0 or high >= n_classes:
            found = np.unique(label)
            raise ValueError(
                f"labels[{i}] holds values {found[:10].tolist()}, outside the classes 0..{n_classes - 1} "
                f"(n_classes={n_classes}). Map raw label values to class indices first (ISBI: "
                "datasets.load_isbi2012() gives 0/1; CTC instance masks: (mask > 0))."
            )
        checked.append(label.astype(np.int32))
    return checked


def _derived_instances(labels):
    """Cells as the 4-connected components of the non-background classes (label > 0).

    For ISBI labels (0 = membrane, 1 = cell) this equals ``weights.instances_from_isbi``.
    """
    instances, _ = ndimage.label(labels > 0)
    return instances.astype(np.int32)


class SegmentationDataset(keras.utils.PyDataset):
    """Batches ``(x, y, w)`` of overlap tiles for ``model.fit`` (Ronneberger et al. 2015, Sec. 3).

    Args:
        images: (N, H, W) or (N, H, W, C) array, or a list of (H, W[, C]) arrays
            (sizes may differ). uint8 is scaled to [0, 1]; floats are used as given.
        labels: (N, H, W) integer class indices (or a list of (H, W) arrays).
        weights: optional precomputed weight maps, (N, H, W). When None, each
            image's map is computed once with ``weights.weight_map`` (Eq. 2) from
            ``instances`` if given, else from the connected components of the
            classes > 0 (for ISBI: ``weights.instances_from_isbi``).
        instances: optional (N, H, W) instance labels (0 = background, 1..n = cells)
            for the weight maps, e.g. CTC masks.
        tile_size: input tile size T, a valid input size for ``depth``/``padding``
            (572 in the paper); the output region is t = ``shapes.output_size(T)``.
        depth, padding: the network's depth and padding (they set t and the
            mirrored context border ``shapes.context_border``).
        n_classes: number of classes; labels must lie in 0..n_classes-1.
        batch_size: tiles per batch.
        tiles_per_epoch: training tiles per epoch (default: one per image); the
            epoch has ceil(tiles_per_epoch / batch_size) full batches.
        augment: apply ``augment.augment_sample`` to every training tile.
        elastic, flip, rotate, intensity: switch each augmentation step.
        elastic_grid, elastic_sigma: the elastic deformation's lattice and
            displacement std in pixels (paper: 3x3, 10 px).
        w0, sigma, class_balance: weight map parameters (paper: 10, ~5 px, True).
            ``w0=0`` with ``class_balance=False`` gives weight 1 everywhere.
        validation: fixed tiles covering every image on a regular grid, no
            augmentation, in the same order every epoch (``tiles_per_epoch`` is
            ignored; the last batch may be smaller).
        seed: seed of the tile positions and the augmentation.
        workers, use_multiprocessing, max_queue_size: passed to
            ``keras.utils.PyDataset`` (parallel batch preparation).

    Raises:
        ValueError/TypeError: mismatched shapes, an invalid tile size (the message
        names the nearest valid sizes), label values outside the classes, an
        empty image list, images smaller than the output tile.
    """

    def __init__(
        self,
        images,
        labels,
        weights=None,
        *,
        instances=None,
        tile_size: int = 572,
        depth: int = 5,
        padding: str = "valid",
        n_classes: int = 2,
        batch_size: int = 1,
        tiles_per_epoch: int | None = None,
        augment: bool = True,
        elastic: bool = True,
        flip: bool = True,
        rotate: bool = True,
        intensity: bool = True,
        elastic_grid: int = 3,
        elastic_sigma: float = 10.0,
        w0: float = 10.0,
        sigma: float = 5.0,
        class_balance: bool = True,
        validation: bool = False,
        seed: int = 0,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if images is None or len(images) == 0:
            raise ValueError("the training set is empty: got 0 images. Pass at least one image and its labels.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        try:
            self.output_size = shapes.output_size(int(tile_size), depth=depth, padding=padding)
        except ValueError as error:
            raise ValueError(f"tile_size={tile_size} is not a valid input size: {error}") from error
        self.tile_size = int(tile_size)
        self.border = (self.tile_size - self.output_size) // 2  # context on each side
        self.images = _as_image_list(images)
        self.labels = _check_labels(self.images, labels, n_classes)
        for i, label in enumerate(self.labels):
            if min(label.shape) < self.output_size:
                raise ValueError(
                    f"images[{i}] is {label.shape[0]}x{label.shape[1]}, smaller than the output tile "
                    f"{self.output_size}x{self.output_size} of tile_size={tile_size}; choose a smaller "
                    f"tile_size (valid sizes: shapes.valid_input_sizes(..., depth={depth}))."
                )
        self.weights = self._weight_maps(weights, instances, w0, sigma, class_balance)
        self.n_classes = n_classes
        self.batch_size = int(batch_size)
        self.validation = bool(validation)
        self.augment_options = dict(
            elastic=elastic, flip=flip, rotate=rotate, intensity=intensity, grid=elastic_grid, sigma=elastic_sigma
        )
        self.augment = bool(augment) and not self.validation
        self.seed = int(seed)
        self.epoch = 0
        if tiles_per_epoch is None:
            tiles_per_epoch = len(self.images)
        if tiles_per_epoch < 1:
            raise ValueError(f"tiles_per_epoch must be >= 1, got {tiles_per_epoch}.")
        self.tiles_per_epoch = int(tiles_per_epoch)
        # Padded copies, computed once: the input tile of an output region at
        # (r, c) is padded[r : r + T, c : c + T].
        self._padded = [
            (mirror_pad(image, self.border), mirror_pad(label, self.border), mirror_pad(weight, self.border))
            for image, label, weight in zip(self.images, self.labels, self.weights)
        ]
        self._grid = self._validation_tiles() if self.validation else None

    # -- setup -----------------------------------------------------------------

    def _weight_maps(self, weights, instances, w0, sigma, class_balance):
        if weights is not None:
            if len(weights) != len(self.images):
                raise ValueError(f"got {len(self.images)} images but {len(weights)} weight maps.")
            result = []
            for i, (weight, label) in enumerate(zip(weights, self.labels)):
                weight = np.asarray(weight, dtype=np.float32)
                if weight.shape != label.shape:
                    raise ValueError(f"weights[{i}] has shape {weight.shape}, expected the labels' {label.shape}.")
                result.append(weight)
            return result
        if instances is not None and len(instances) != len(self.images):
            raise ValueError(f"got {len(self.images)} images but {len(instances)} instance label images.")
        result = []
        for i, label in enumerate(self.labels):
            cells = np.asarray(instances[i]) if instances is not None else _derived_instances(label)
            if cells.shape != label.shape:
                raise ValueError(f"instances[{i}] has shape {cells.shape}, expected the labels' {label.shape}.")
            result.append(weight_map(cells, w0=w0, sigma=sigma, class_balance=class_balance))
        return result

    def _validation_tiles(self):
        """(image index, row, col) of output regions covering every image on a grid."""
        t = self.output_size
        tiles = []
        for i, label in enumerate(self.labels):
            height, width = label.shape
            rows = sorted({min(r, height - t) for r in range(0, height, t)})
            cols = sorted({min(c, width - t) for c in range(0, width, t)})
            tiles += [(i, r, c) for r in rows for c in cols]
        return tiles

    # -- PyDataset interface -----------------------------------------------------

    def __len__(self):
        if self.validation:
            return math.ceil(len(self._grid) / self.batch_size)
        return math.ceil(self.tiles_per_epoch / self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Continue with the tiles of ``epoch`` (0-based), e.g. when resuming training."""
        self.epoch = int(epoch)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for a dataset of {len(self)} batches.")
        if self.validation:
            chunk = self._grid[index * self.batch_size : (index + 1) * self.batch_size]
            samples = [self.tile(i, r, c) for i, r, c in chunk]
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
            samples = []
            for k in range(self.batch_size):
                i = int(order[(index * self.batch_size + k) % len(order)])
                height, width = self.labels[i].shape
                r = int(rng.integers(0, height - self.output_size + 1))
                c = int(rng.integers(0, width - self.output_size + 1))
                samples.append(self.tile(i, r, c, rng if self.augment else None))
        x, y, w = (np.stack(parts) for parts in zip(*samples))
        return x, y, w

    def tile(self, i: int, row: int, col: int, rng=None):
        """One sample: the input tile whose output region starts at (row, col) of image ``i``.

        Returns (x (T, T, C) float32, y (t, t) int32, w (t, t) float32); augmented
        with ``rng`` (a numpy Generator) when given.
        """
        image, label, weight = self._padded[i]
        T, b, t = self.tile_size, self.border, self.output_size
        x = image[row : row + T, col : col + T]
        y = label[row : row + T, col : col + T]
        w = weight[row : row + T, col : col + T]
        if rng is not None:
            x, y, w = augment_sample(x, y, w, rng, **self.augment_options)
        return (
            np.ascontiguousarray(x, dtype=np.float32),
            np.ascontiguousarray(y[b : b + t, b : b + t], dtype=np.int32),
            np.ascontiguousarray(w[b : b + t, b : b + t], dtype=np.float32),
        )

    # -- tf.data fast path ---------------------------------------------------------

    def to_tf_dataset(self, epochs: int = 1, first_epoch: int = 0, parallel_calls=None):
        """A ``tf.data.Dataset`` of the same batches, prepared in parallel threads.

        Batch ``index`` of epoch ``e`` equals ``self`` at epoch ``e``, batch ``index``
        (same seed, same tiles, same augmentation). Needs TensorFlow; the
        PyDataset itself works without it.

        Args:
            epochs: number of epochs the dataset runs through.
            first_epoch: the epoch number of its first batch (for resuming).
            parallel_calls: threads preparing batches (default: tf.data.AUTOTUNE).
        """
        try:
            import tensorflow as tf
        except ImportError as error:
            raise ImportError(
                "to_tf_dataset() needs TensorFlow; without it pass the SegmentationDataset to model.fit "
                "directly (it works on every backend)."
            ) from error

        n_batches = len(self)
        channels = self.images[0].shape[-1]

        def make_batch(epoch, index):
            copy = SegmentationDataset.__new__(SegmentationDataset)
            copy.__dict__.update(self.__dict__)
            copy.epoch = int(epoch)
            return copy[int(index)]

        def load(step):
            epoch = first_epoch + step // n_batches
            x, y, w = tf.numpy_function(make_batch, [epoch, step % n_batches], (tf.float32, tf.int32, tf.float32))
            x.set_shape((None, self.tile_size, self.tile_size, channels))
            y.set_shape((None, self.output_size, self.output_size))
            w.set_shape((None, self.output_size, self.output_size))
            return x, y, w

        steps = tf.data.Dataset.range(epochs * n_batches)
        calls = tf.data.AUTOTUNE if parallel_calls is None else parallel_calls
        return steps.map(load, num_parallel_calls=calls, deterministic=True).prefetch(tf.data.AUTOTUNE)


def synthetic_cells(n_images: int = 4, size: int = 128, n_cells: int = 12, seed: int = 0, noise: float = 0.1):
    """Synthetic "cells" for tests and quick demos: bright discs on a dark, noisy background.

    Like jakeret/unet's circles: the class label is a function of the image
    (disc = cell, 1; background, 0) and discs may touch, so the weight map has
    borders to emphasise. Not from the paper.

    Returns:
        (images (N, size, size) float32 in [0, 1], instance labels (N, size, size)
        int32: 0 = background, 1..n = discs).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n_images, size, size), np.float32)
    instances = np.zeros((n_images, size, size), np.int32)
    for n in range(n_images):
        for k in range(1, n_cells + 1):
            cy, cx = rng.uniform(0, size, 2)
            radius = rng.uniform(size / 24, size / 10)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
            instances[n][disc & (instances[n] == 0)] = k
        images[n] = 0.25 + 0.5 * (instances[n] > 0) + rng.normal(0.0, noise, (size, size))
    return np.clip(images, 0.0, 1.0), instances
