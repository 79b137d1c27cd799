"""The label images that the metrics compare: input checks, cells, contingency tables.

One home for what every metric needs before it can count anything:

* checks that turn what a user passes (ISBI class labels, membrane
  probabilities, pairs of maps) into arrays of a known kind, with an error that
  says what was expected;
* the connectivity of cells and membranes (:data:`FOUR`, :data:`EIGHT`), shared
  with ``warping.py``;
* :func:`cell_components`, the cells of an ISBI label map as numbered segments,
  :func:`cells_from_probability`, the cells of a predicted probability map
  (the one rule that Table 2's SEG is scored with), and :func:`cells_from_classes`,
  the same for a network with a third "cell border" class, and
  :func:`cells_from_prediction`, which picks between the two by the number of classes;
* :func:`contingency`, the overlap counts of two segmentations that the Rand,
  information and SEG scores are computed from.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 2-D neighbourhoods for ndimage.label: cells are 4-connected (the challenge's choice),
# membranes 8-connected (the (4, 8) pair of digital topology, see warping.py).
FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def connectivity_structure(connectivity: int) -> np.ndarray:
    """The 3x3 neighbourhood of ``connectivity`` 4 (:data:`FOUR`) or 8 (:data:`EIGHT`)."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}.")
    return FOUR if connectivity == 4 else EIGHT


# ----------------------------------------------------------------------------- input checks
def as_stack(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W) -> (1, H, W); (N, H, W) unchanged; anything else is an error."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return array
    raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {array.shape}. "
                     "For a (H, W, 2) softmax output pass channel 0, the membrane probability.")


def check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    """Raise ``ValueError`` unless the two arrays cover the same pixels."""
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
                         "they must cover the same pixels (crop or pad one of them).")


def check_integer_labels(array: np.ndarray, name: str, kind: str) -> None:
    """Raise ``ValueError`` unless ``array`` is bool or integer (``kind``: what its values mean)."""
    if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer {kind}, got dtype {array.dtype}.")


def check_isbi_labels(labels, name: str = "labels") -> np.ndarray:
    """ISBI class labels (0 = membrane, 1 = cell) as a bool cell mask (True = cell).

    Raises:
        ValueError: for values other than 0 and 1 (e.g. the 0/255 of the raw
            TIFF: divide by 255 or load with ``datasets.load_isbi2012``).
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{name} must be integer class labels, got dtype {labels.dtype}.")
    values = np.unique(labels)
    if not np.isin(values, (0, 1)).all():
        shown = values[:10].tolist()
        raise ValueError(f"{name} must hold only 0 (membrane) and 1 (cell); found values {shown}. "
                         "Raw ISBI TIFFs use 0/255: divide by 255 or use datasets.load_isbi2012().")
    return labels.astype(bool)


def check_probabilities(probabilities, name: str = "probabilities") -> np.ndarray:
    """Membrane probabilities as float32, checked to be finite and within [0, 1]."""
    probabilities = np.asarray(probabilities)
    if not (np.issubdtype(probabilities.dtype, np.floating) or np.issubdtype(probabilities.dtype, np.integer)):
        raise ValueError(f"{name} must be numbers in [0, 1], got dtype {probabilities.dtype}.")
    probabilities = probabilities.astype(np.float32, copy=False)
    if probabilities.size and (not np.isfinite(probabilities).all()
                               or probabilities.min() < 0 or probabilities.max() > 1):
        finite = probabilities[np.isfinite(probabilities)]
        low, high = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
        raise ValueError(f"{name} must be finite probabilities in [0, 1]; found range [{low}, {high}]"
                         f"{' and NaN/inf' if not np.isfinite(probabilities).all() else ''}. "
                         "Pass softmax outputs (channel 0 = membrane), not logits or 0-255 images.")
    return probabilities


def check_pair(predicted_labels, labels) -> tuple[np.ndarray, np.ndarray]:
    """Both ISBI label maps as (N, H, W) bool cell masks of equal shape."""
    predicted = check_isbi_labels(predicted_labels, "predicted_labels")
    truth = check_isbi_labels(labels, "labels")
    check_same_shape(predicted, truth, ("predicted_labels", "labels"))
    return as_stack(predicted, "predicted_labels"), as_stack(truth, "labels")


# ----------------------------------------------------------------------------- segments
def cell_components(cell_mask: np.ndarray, connectivity: int = 4) -> np.ndarray:
    """Label the cells (connected components of the cell class) of each slice.

    Args:
        cell_mask: (H, W) or (N, H, W) bool, True = cell.
        connectivity: 4 (the challenge's choice) or 8.

    Returns:
        int32 array of the same shape: 0 = membrane, 1..n = cells, numbered
        across the whole stack so that no two slices share a label (slice 0's
        cells first, each slice's in raster order).
    """
    structure = connectivity_structure(connectivity)
    stack = as_stack(np.asarray(cell_mask, dtype=bool), "cell_mask")
    # One 3-D labelling whose neighbourhood is flat along the slice axis: cells never
    # join across slices, and scipy numbers them in scan order, slice after slice.
    flat = np.zeros((3, 3, 3), dtype=bool)
    flat[1] = structure
    labelled, _ = ndimage.label(stack, structure=flat)
    return labelled.astype(np.int32, copy=False).reshape(np.shape(cell_mask))


def cells_from_probability(cell_probability, threshold: float = 0.5, seed_threshold: float | None = None
                           ) -> np.ndarray:
    """Numbered cells of a predicted P(cell) map: the rule every SEG score of the package uses.

    Without ``seed_threshold``: the 4-connected components of P(cell) > ``threshold``.
    With it, touching cells that the network joined by a thin bridge of middling
    probability are split again: the components of P(cell) > ``seed_threshold``
    are seeds, and a watershed on -P(cell) grows each seed over the pixels with
    P(cell) > ``threshold`` (scikit-image's ``watershed``, 4-connected), so two
    seeds meet where the probability dips between them. A component of
    P(cell) > ``threshold`` with no seed stays one cell.

    Args:
        cell_probability: (H, W) or (N, H, W) floats in [0, 1].
        threshold: where a pixel counts as cell.
        seed_threshold: None (plain components), or a value in [threshold, 1].

    Returns:
        int32 labels of the same shape, 0 = background, numbered across the stack.
    """
    probability = check_probabilities(cell_probability, "cell_probability")
    as_stack(probability, "cell_probability")  # (H, W) or (N, H, W), else a clear error
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}.")
    foreground = probability > threshold
    if seed_threshold is None:
        return cell_components(foreground)
    if not threshold <= seed_threshold <= 1.0:
        raise ValueError(f"seed_threshold must lie in [threshold, 1] = [{threshold}, 1], got {seed_threshold}.")
    seeds = cell_components(probability > seed_threshold)  # numbered across the stack
    cells = _grow_seeds(seeds, -probability, foreground)
    unseeded = cell_components(foreground & (cells == 0))  # foreground pieces that hold no seed
    cells[unseeded > 0] = unseeded[unseeded > 0] + int(seeds.max())
    return cells


def cells_from_classes(probabilities) -> np.ndarray:
    """Numbered cells of a three-class prediction (background, cell interior, cell border).

    The rule for a network trained with ``cell_targets="border-class"``
    (``weights.border_class_labels``): the 4-connected components of
    P(interior) > 0.5 are the seeds, and a watershed on P(background) grows
    each seed over the pixels that are more likely cell than background
    (P(background) < 0.5), so a border between two touching cells goes half to
    each. A piece of cell with no interior (border alone) is no cell.

    Args:
        probabilities: (H, W, 3) or (N, H, W, 3) softmax outputs.

    Returns:
        int32 labels (H, W) or (N, H, W), 0 = background, numbered across the stack.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim not in (3, 4) or probabilities.shape[-1] != 3:
        raise ValueError(f"probabilities must be (H, W, 3) or (N, H, W, 3): background, cell interior, cell "
                         f"border; got shape {probabilities.shape}. A two-class P(cell) map goes to "
                         "cells_from_probability.")
    background = check_probabilities(probabilities[..., 0], "probabilities[..., 0]")
    interior = check_probabilities(probabilities[..., 1], "probabilities[..., 1]")
    seeds = cell_components(interior > 0.5)  # numbered across the stack
    return _grow_seeds(seeds, background, background < 0.5)


def _grow_seeds(seeds, landscape, mask) -> np.ndarray:
    """Each seed grown over ``mask`` by a watershed on ``landscape``, frame by frame (scikit-image, 4-connected).

    All three are (H, W) or (N, H, W); the seeds keep their numbers; pixels of
    ``mask`` that no seed reaches stay 0.
    """
    from skimage.segmentation import watershed  # noqa: PLC0415

    cells = np.zeros(seeds.shape, np.int32)
    frames = [as_stack(array, "seeds") for array in (seeds, landscape, mask, cells)]
    for frame_seeds, frame_landscape, frame_mask, frame_cells in zip(*frames):
        frame_cells[...] = watershed(frame_landscape, frame_seeds, mask=frame_mask, connectivity=1)
    return cells


def cells_from_prediction(probabilities) -> np.ndarray:
    """Numbered cells of a network's class probabilities (..., H, W, K), by the rule for its classes.

    K = 2 (background, cell): :func:`cells_from_probability` of P(cell);
    K = 3 (background, cell interior, cell border): :func:`cells_from_classes`.
    The one rule the recorded runs, the studies and the book's figures use.
    """
    probabilities = np.asarray(probabilities)
    classes = probabilities.shape[-1] if probabilities.ndim in (3, 4) else None
    if classes == 2:
        return cells_from_probability(probabilities[..., 1])
    if classes == 3:
        return cells_from_classes(probabilities)
    raise ValueError(f"probabilities must be (H, W, K) or (N, H, W, K) with K = 2 (background, cell) or 3 "
                     f"(background, cell interior, cell border); got shape {probabilities.shape}.")


def contingency(true_segmentation: np.ndarray, predicted_segmentation: np.ndarray):
    """Sparse contingency table as (true label, predicted label, pixel count) triplets.

    Only pairs of labels that share at least one pixel are listed; the counts
    are float64 so that sums of squares do not overflow.
    """
    t = np.asarray(true_segmentation).ravel().astype(np.int64)
    p = np.asarray(predicted_segmentation).ravel().astype(np.int64)
    if t.size and (t.min() < 0 or p.min() < 0):
        raise ValueError("segmentations must hold non-negative integer labels (0 = background).")
    width = int(p.max()) + 1 if p.size else 1
    n_bins = (int(t.max()) + 1 if t.size else 1) * width
    codes = t * width + p
    if n_bins <= 4 * t.size + 1_000_000:  # small label range: counting is faster than sorting
        counts = np.bincount(codes, minlength=n_bins)
        codes = np.flatnonzero(counts)
        counts = counts[codes]
    else:
        codes, counts = np.unique(codes, return_counts=True)
    return codes // width, codes % width, counts.astype(np.float64)
