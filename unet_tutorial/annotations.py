"""Partial annotations of the Cell Tracking Challenge: cells that are marked but not outlined.

The challenge's ``SEG`` ground truth does not outline every cell of a frame:
its ``TRA`` markers (one small blob per cell, ``man_trackNNN.tif``) show cells
that have no ``SEG`` mask. Trained as background, such a cell teaches the
network to miss real cells, and a correct prediction on it would count as a
false positive. So those cells are *ignored*: weight 0 in training (the paper
trained on partially annotated images as well) and left out of the pixel IoU.
SEG needs no change: it scores only the outlined (annotated) cells.

The marker of an unannotated cell covers only a small part of it (2-5 % of a
cell's area in these sets), and its outline is unknown. The ignored region is
therefore a disc around the marker as large as a typical annotated cell of the
same frames (the median area), joined with the marker itself, less every
annotated cell pixel: it covers the cell while never hiding an annotation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["unannotated_markers", "count_unannotated", "ignore_regions"]


def _check_pair(masks, markers) -> tuple[np.ndarray, np.ndarray]:
    masks, markers = np.asarray(masks), np.asarray(markers)
    if masks.shape != markers.shape or masks.ndim not in (2, 3):
        raise ValueError(f"masks and markers must be (H, W) or (N, H, W) of one shape, got {masks.shape} "
                         f"and {markers.shape}.")
    single = masks.ndim == 2
    return (masks[None], markers[None]) if single else (masks, markers)


def unannotated_markers(mask: np.ndarray, marker: np.ndarray) -> list[int]:
    """The TRA marker labels of one frame that touch no annotated (``SEG``) cell."""
    marked = np.unique(marker[marker > 0])
    annotated = np.unique(marker[(marker > 0) & (mask > 0)])
    return sorted(set(marked.tolist()) - set(annotated.tolist()))


def count_unannotated(masks, markers) -> tuple[int, int]:
    """(marked cells, of them without a SEG outline), summed over the frames."""
    masks, markers = _check_pair(masks, markers)
    marked = sum(int(np.count_nonzero(np.unique(frame[frame > 0]))) for frame in markers)
    missing = sum(len(unannotated_markers(mask, marker)) for mask, marker in zip(masks, markers))
    return marked, missing


def ignore_regions(masks, markers) -> np.ndarray:
    """Where no label is known: bool (N, H, W) (or (H, W)), True around each marked cell without a SEG outline.

    Args:
        masks: (N, H, W) ``SEG`` instance labels, 0 = background (``load_ctc(...).masks``).
        markers: (N, H, W) ``TRA`` marker labels of the same frames (``load_ctc(...).markers``).
    """
    single = np.asarray(masks).ndim == 2
    masks, markers = _check_pair(masks, markers)
    areas = np.concatenate([np.bincount(mask.ravel())[1:] for mask in masks])
    areas = areas[areas > 0]
    radius = float(np.sqrt(np.median(areas) / np.pi)) if areas.size else 0.0  # a typical cell's radius
    ignore = np.zeros(masks.shape, dtype=bool)
    for frame, (mask, marker) in enumerate(zip(masks, markers)):
        for label in unannotated_markers(mask, marker):
            blob = marker == label
            centre_row, centre_col = ndimage.center_of_mass(blob)
            rows, cols = np.ogrid[: mask.shape[0], : mask.shape[1]]
            disc = (rows - centre_row) ** 2 + (cols - centre_col) ** 2 <= radius**2
            ignore[frame] |= disc | blob
        ignore[frame] &= mask == 0
    return ignore[0] if single else ignore
