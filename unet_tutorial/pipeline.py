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

Only numpy, scipy and OpenCV are used, so the dataset works on every Keras
backend; the elastic warp is OpenCV's by default (``AugmentConfig.method``:
"auto"), about ten times faster per core than the scipy reference. The tile,
augmentation and weight-map settings come as the frozen configs of :mod:`.config`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from scipy import ndimage

from .augment import augment_sample
from .config import AugmentConfig, TileConfig, WeightMapConfig
from .tiling import mirror_pad
from .weights import class_balance_weights, weight_map

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


def _without_ignored(weights, ignore):
    """The weight maps with weight 0 where ``ignore`` is True (nothing is learnt where no label is known)."""
    if len(ignore) != len(weights):
        raise ValueError(f"got {len(weights)} images but {len(ignore)} ignore masks.")
    result = []
    for i, (weight, unknown) in enumerate(zip(weights, ignore)):
        unknown = np.asarray(unknown, dtype=bool)
        if unknown.shape != weight.shape:
            raise ValueError(f"ignore[{i}] has shape {unknown.shape}, expected the labels' {weight.shape}.")
        result.append(np.where(unknown, np.float32(0), weight))
    return result


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
        ignore: optional (N, H, W) bool, True where the label is unknown (e.g. a
            marked but unannotated cell, ``annotations.ignore_regions``): weight 0.
        instances: optional (N, H, W) instance labels (0 = background, 1..n = cells)
            for the weight maps, e.g. CTC masks.
        tiles: a :class:`config.TileConfig`: the input tile T and the network's
            depth and padding, which set the output tile t and the mirrored
            context border (paper: 572 -> 388).
        augmentation: a :class:`config.AugmentConfig`, applied to every tile
            with ``augment.augment_sample`` when ``augmentation.enabled``.
        weighting: a :class:`config.WeightMapConfig` (paper: w0 10, sigma ~5 px,
            class balance). ``w0=0`` without class balance gives weight 1 everywhere.
        n_classes: number of classes; labels must lie in 0..n_classes-1.
        batch_size: tiles per batch.
        tiles_per_epoch: training tiles per epoch (default: one per image); the
            epoch has ceil(tiles_per_epoch / batch_size) full batches.
        seed: seed of the tile positions and the augmentation.
        on_device: leave the augmentation to the device: batches ``((x, y, w),)``
            of whole T x T windows of image, labels and weight map, not augmented,
            for a model from ``augment_device.augmenting_model``.
        workers, use_multiprocessing, max_queue_size: passed to
            ``keras.utils.PyDataset`` (parallel batch preparation).

    Raises:
        ValueError/TypeError: mismatched shapes, label values outside the
        classes, an empty image list, images smaller than the output tile.
    """

    def __init__(
        self,
        images,
        labels,
        weights=None,
        *,
        instances=None,
        ignore=None,
        tiles: TileConfig = TileConfig(),
        augmentation: AugmentConfig = AugmentConfig(),
        weighting: WeightMapConfig = WeightMapConfig(),
        n_classes: int = 2,
        batch_size: int = 1,
        tiles_per_epoch: int | None = None,
        seed: int = 0,
        on_device: bool = False,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if images is None or len(images) == 0:
            raise ValueError("the training set is empty: got 0 images. Pass at least one image and its labels.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.tiles, self.augmentation = tiles, augmentation
        self.tile_size, self.output_size, self.border = tiles.tile_size, tiles.output_size, tiles.border
        self.images = _as_image_list(images)
        self.labels = _check_labels(self.images, labels, n_classes)
        self.n_classes = n_classes
        for i, label in enumerate(self.labels):
            if min(label.shape) < self.output_size:
                raise ValueError(
                    f"images[{i}] is {label.shape[0]}x{label.shape[1]}, smaller than the output tile "
                    f"{self.output_size}x{self.output_size} of tile_size={tiles.tile_size}; choose a smaller "
                    f"tile_size (valid sizes: shapes.valid_input_sizes(..., depth={tiles.depth}))."
                )
        self.weights = self._weight_maps(weights, instances, weighting)
        if ignore is not None:
            self.weights = _without_ignored(self.weights, ignore)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.on_device = bool(on_device)
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

    # -- setup -----------------------------------------------------------------

    def _weight_maps(self, weights, instances, weighting: WeightMapConfig):
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
        if self.n_classes > 2:  # K classes: w_c over all K, border term from each class's objects
            from .class_weights import class_weight_map  # noqa: PLC0415

            return [class_weight_map(label, self.n_classes, None if instances is None else instances[i], w0=weighting.w0,
                                     sigma=weighting.sigma, class_balance=weighting.class_balance)
                    for i, label in enumerate(self.labels)]
        over_training_set = weighting.class_balance and weighting.class_balance_over == "training-set"
        result = []
        for i, label in enumerate(self.labels):
            cells = np.asarray(instances[i]) if instances is not None else _derived_instances(label)
            if cells.shape != label.shape:
                raise ValueError(f"instances[{i}] has shape {cells.shape}, expected the labels' {label.shape}.")
            result.append(weight_map(cells, w0=weighting.w0, sigma=weighting.sigma,
                                     class_balance=weighting.class_balance and not over_training_set))
        if over_training_set:  # w_c from the class frequencies of all training images (the paper's wording)
            foreground = [label > 0 for label in self.labels]
            every = np.concatenate([mask.ravel() for mask in foreground])
            balance = class_balance_weights(every)  # the same formula as per image, over all training pixels
            w_foreground, w_background = balance[every].max(initial=1.0), balance[~every].max(initial=1.0)
            result = [weight - 1.0 + np.where(mask, w_foreground, w_background).astype(np.float32)
                      for weight, mask in zip(result, foreground)]
        return result

    # -- PyDataset interface -----------------------------------------------------

    def __len__(self):
        return math.ceil(self.tiles_per_epoch / self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Continue with the tiles of ``epoch`` (0-based), e.g. when resuming training."""
        self.epoch = int(epoch)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for a dataset of {len(self)} batches.")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
        samples = []
        for k in range(self.batch_size):
            i = int(order[(index * self.batch_size + k) % len(order)])
            height, width = self.labels[i].shape
            r = int(rng.integers(0, height - self.output_size + 1))
            c = int(rng.integers(0, width - self.output_size + 1))
            if self.on_device:  # the whole T x T window of all three; the device augments them
                samples.append(self.window(i, r, c))
            else:
                samples.append(self.tile(i, r, c, rng if self.augmentation.enabled else None))
        x, y, w = (np.stack(parts) for parts in zip(*samples))
        return ((x, y, w),) if self.on_device else (x, y, w)

    def window(self, i: int, row: int, col: int):
        """The T x T windows of image, labels and weight map whose output region starts at (row, col); not augmented."""
        image, label, weight = self._padded[i]
        window = (slice(row, row + self.tile_size), slice(col, col + self.tile_size))
        return image[window], label[window], weight[window]

    def tile(self, i: int, row: int, col: int, rng=None):
        """One sample: the input tile whose output region starts at (row, col) of image ``i``.

        Returns (x (T, T, C) float32, y (t, t) int32, w (t, t) float32); augmented
        with ``rng`` (a numpy Generator) when given.
        """
        b, t = self.border, self.output_size
        x, y, w = self.window(i, row, col)
        if rng is not None:  # labels and weights come back as the output region (only that is warped)
            x, y, w = augment_sample(x, y, w, rng, label_border=b, **self.augmentation.sample_options())
        else:
            y, w = y[b : b + t, b : b + t], w[b : b + t, b : b + t]
        return (
            np.ascontiguousarray(x, dtype=np.float32),
            np.ascontiguousarray(y, dtype=np.int32),
            np.ascontiguousarray(w, dtype=np.float32),
        )


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
