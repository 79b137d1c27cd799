"""The loss weight map of U-Net (Ronneberger et al. 2015, Sec. 3, Eq. 2).

The paper pre-computes, for every ground-truth segmentation, a weight map

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

where ``w_c`` balances the class frequencies, ``d1(x)`` is the distance from the
pixel ``x`` to the border of the nearest cell and ``d2(x)`` the distance to the
border of the second-nearest cell. With ``w0 = 10`` and ``sigma ~ 5`` pixels the
thin background gaps that separate two touching cells get a large weight, so the
network is forced to learn those separation borders (paper Fig. 3c-d).

Two choices the paper leaves open, made here as in the authors' reference
implementation and the paper's Fig. 3d:

* The border term is added to **background pixels only** (pixels that belong to
  no cell). Inside a cell ``d1 = 0`` and the term would only depend on the
  distance to the neighbour, which is not what Fig. 3d shows.
* ``w_c`` is the inverse class frequency, normalised so that its mean over the
  image is 1 (see :func:`class_balance_weights`). An image holding a single
  class gets ``w_c = 1`` everywhere.

Distances are Euclidean, between pixel centres, from a background pixel to the
nearest pixel of a cell (``scipy.ndimage.distance_transform_edt``). With fewer
than two cells there is no second-nearest cell and the border term is 0.

Cells that touch directly have no background pixel between them, so the border
term cannot mark that boundary. The paper's ground truth separates touching
cells by a thin background gap (Fig. 3b); :func:`separate_touching_instances`
makes such a gap in instance masks that lack one (e.g. some Cell Tracking
Challenge masks) before the weight map and the class labels are computed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .segments import cell_components, check_isbi_labels

__all__ = ["weight_map", "class_balance_weights", "instances_from_isbi", "separate_touching_instances",
           "border_class_labels"]


def _check_label_image(labels: np.ndarray, name: str) -> np.ndarray:
    """Return ``labels`` as an array after checking it is a 2-D integer/bool image."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (H, W) label image, got shape {labels.shape}. "
            "Pass one slice at a time (e.g. labels[i] for a stack, labels[..., 0] for "
            "an (H, W, 1) array)."
        )
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise TypeError(
            f"{name} must hold integer labels (or bool), got dtype {labels.dtype}. "
            "Convert with labels.astype(np.int32) if the values are whole numbers."
        )
    return labels


def class_balance_weights(foreground: np.ndarray) -> np.ndarray:
    """The class-balancing term w_c(x) of Eq. 2 for a two-class (cell/background) mask.

    Formula (inverse class frequency, normalised to mean 1 over the image)::

        w_c(x) = N / (K * N_c(x))

    with ``N`` the number of pixels, ``N_c`` the number of pixels of class ``c``
    and ``K`` the number of classes present in the image (1 or 2). Then
    ``mean(w_c) == 1`` and ``N_c * w_c`` is the same for every class, i.e. both
    classes contribute equally to the loss. The paper does not give the
    normalisation; this is one common choice.

    Args:
        foreground: (H, W) bool, True for cell pixels.

    Returns:
        (H, W) float32 weights.
    """
    foreground = np.asarray(foreground, dtype=bool)
    n_pixels = foreground.size
    n_foreground = int(np.count_nonzero(foreground))
    n_background = n_pixels - n_foreground
    if n_foreground == 0 or n_background == 0:
        return np.ones(foreground.shape, dtype=np.float32)
    n_classes = 2
    w_foreground = n_pixels / (n_classes * n_foreground)
    w_background = n_pixels / (n_classes * n_background)
    return np.where(foreground, w_foreground, w_background).astype(np.float32)


def _two_nearest_distances(instance_labels: np.ndarray, max_distance: float):
    """Distances d1 <= d2 from every pixel to its nearest and second-nearest instance.

    Each instance's distance transform is computed only inside its bounding box
    grown by ``max_distance`` pixels; pixels outside that window are farther than
    ``max_distance`` from the instance and keep ``inf``. The window holds every
    pixel of the instance, so the distances inside it are exact.

    Returns:
        (d1, d2): two (H, W) float64 arrays, ``inf`` where no (second) instance is
        within ``max_distance``.
    """
    height, width = instance_labels.shape
    d1 = np.full((height, width), np.inf)
    d2 = np.full((height, width), np.inf)
    margin = int(math.ceil(max_distance))
    # find_objects gives one bounding box (a pair of slices) per label value 1..max.
    for index, box in enumerate(ndimage.find_objects(instance_labels), start=1):
        if box is None:  # label value not used
            continue
        rows = slice(max(box[0].start - margin, 0), min(box[0].stop + margin, height))
        cols = slice(max(box[1].start - margin, 0), min(box[1].stop + margin, width))
        outside = instance_labels[rows, cols] != index
        # distance_transform_edt: distance of each nonzero pixel to the nearest zero.
        distance = ndimage.distance_transform_edt(outside)
        near1, near2 = d1[rows, cols], d2[rows, cols]  # views: updated in place
        near2[...] = np.minimum(near2, np.maximum(near1, distance))
        near1[...] = np.minimum(near1, distance)
    return d1, d2


def weight_map(
    instance_labels: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: bool = True,
) -> np.ndarray:
    """Pixel-wise loss weights of Ronneberger et al. 2015, Sec. 3, Eq. 2.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))`` where the
    second (border) term is added on background pixels only (see module docstring).

    Args:
        instance_labels: (H, W) integer array, 0 = background, 1..n = cells (one
            value per cell, as in Cell Tracking Challenge masks). For ISBI-2012
            class labels, first call :func:`instances_from_isbi`. A binary 0/1
            mask is read as a single cell and gets no border term.
        w0: height of the border term (paper: 10).
        sigma: width of the border term in pixels (paper: "approximately 5").
        class_balance: if True, ``w_c`` is the inverse class frequency
            (:func:`class_balance_weights`); if False, ``w_c = 1``.

    Returns:
        (H, W) float32 weight map.

    Implementation: the border term is below ``1e-6 * w0`` once
    ``d1 + d2 > sigma * sqrt(2 * ln(1e6))`` (about 26 px for sigma = 5), so each
    cell's distance transform is computed only within that distance of its
    bounding box and the term is set to 0 beyond it. A 512x512 ISBI slice with
    hundreds of cells takes a fraction of a second.
    """
    instance_labels = _check_label_image(instance_labels, "instance_labels")
    if instance_labels.dtype == bool:
        instance_labels = instance_labels.astype(np.int32)
    if instance_labels.size and instance_labels.min() < 0:
        raise ValueError(
            f"instance_labels must be >= 0 (0 = background, 1..n = cells), "
            f"got minimum {instance_labels.min()}."
        )
    if w0 < 0 or sigma <= 0:
        raise ValueError(f"need w0 >= 0 and sigma > 0, got w0={w0}, sigma={sigma}.")

    foreground = instance_labels > 0
    if class_balance:
        weights = class_balance_weights(foreground)
    else:
        weights = np.ones(instance_labels.shape, dtype=np.float32)
    if w0 == 0 or not foreground.any():
        return weights

    # Where w0 * exp(-D**2 / (2 sigma**2)) < 1e-6 * w0: D > sigma * sqrt(2 ln 1e6).
    max_distance = sigma * math.sqrt(2.0 * math.log(1e6))
    d1, d2 = _two_nearest_distances(instance_labels.astype(np.int64), max_distance)
    near_two_cells = ~foreground & np.isfinite(d2)
    total = d1[near_two_cells] + d2[near_two_cells]
    border = w0 * np.exp(-(total**2) / (2.0 * sigma**2))
    weights[near_two_cells] += border.astype(np.float32)
    return weights


def instances_from_isbi(labels: np.ndarray) -> np.ndarray:
    """Cells of an ISBI-2012 label image as instances (connected components).

    ISBI-2012 labels only say "membrane" (0) or "cell interior" (1); the weight
    map needs one value per cell. Cells are the 4-connected components of the
    cell class, so two cells that touch only diagonally through a one-pixel
    membrane stay separate.

    Args:
        labels: (H, W) uint8 (or any integer/bool) class labels, 0 = membrane,
            1 = cell, as returned by ``datasets.load_isbi2012()``. Raw files use
            255 for cells: convert with ``(raw == 255).astype(np.uint8)``.

    Returns:
        (H, W) int32 instance labels: 0 = membrane, 1..n = cells.
    """
    labels = _check_label_image(labels, "labels")
    # the metrics' rules: ISBI labels hold only 0 and 1; cells are 4-connected
    return cell_components(check_isbi_labels(labels, "labels"), connectivity=4)


def separate_touching_instances(instance_labels: np.ndarray) -> np.ndarray:
    """Set to background every cell pixel that has a pixel of another cell among its 8 neighbours.

    This opens a background gap (about 2 px wide) where two instances touch, as
    in the paper's ground truth (Fig. 3b), so that the class labels show the
    separation and the weight map's border term weights it. Not a step the paper
    describes in code; a common preprocessing for instance masks.

    Args:
        instance_labels: (H, W) integer array, 0 = background, 1..n = cells.

    Returns:
        (H, W) int32 instance labels with the touching pixels set to 0.
    """
    labels = _check_label_image(instance_labels, "instance_labels").astype(np.int64)
    largest_neighbour = ndimage.maximum_filter(labels, size=3, mode="nearest")
    # Background must not count as "another cell": make it larger than any label.
    smallest_neighbour = ndimage.minimum_filter(
        np.where(labels == 0, labels.max() + 1, labels), size=3, mode="nearest"
    )
    touching = (labels > 0) & ((largest_neighbour > labels) | (smallest_neighbour < labels))
    return np.where(touching, 0, labels).astype(np.int32)


def border_class_labels(instance_labels: np.ndarray) -> np.ndarray:
    """Three classes from instance masks: 0 = background, 1 = cell interior, 2 = cell border.

    A cell's border is every pixel of it that has a pixel of another label
    (background or another cell) among its 8 neighbours: a one-pixel ring
    around each cell, two pixels where two cells touch. A network that learns
    this third class marks where touching cells meet instead of having to leave
    a gap of background there (:func:`separate_touching_instances`, the paper's
    way); ``metrics.cells_from_classes`` turns its output back into cells. Not
    in the paper: a common alternative for touching nuclei and cells.

    Args:
        instance_labels: (H, W) integer array, 0 = background, 1..n = cells.

    Returns:
        (H, W) uint8 classes 0, 1, 2.
    """
    labels = _check_label_image(instance_labels, "instance_labels").astype(np.int64)
    largest_neighbour = ndimage.maximum_filter(labels, size=3, mode="nearest")
    smallest_neighbour = ndimage.minimum_filter(labels, size=3, mode="nearest")  # background (0) counts here
    border = (labels > 0) & ((largest_neighbour != labels) | (smallest_neighbour != labels))
    return np.where(border, 2, labels > 0).astype(np.uint8)
