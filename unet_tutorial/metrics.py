"""Evaluation metrics of the paper's Table 1 (ISBI 2012) and Table 2 (ISBI cell tracking 2015).

Ronneberger et al. 2015, Sec. 4: Table 1 ranks the EM segmentation challenge by
warping error, Rand error and pixel error; Table 2 gives the "IOU" of the cell
segmentation task of the cell tracking challenge.

The ISBI definitions follow the challenge's Fiji code (trainableSegmentation
``PixelError``, ``RandError``, ``WarpingError``; Arganda-Carreras et al.,
Frontiers in Neuroanatomy 9:142, 2015):

* labels: 0 = membrane, 1 = cell (as ``datasets.load_isbi2012`` returns them);
  predictions passed as probabilities are MEMBRANE probabilities in [0, 1];
* cells are the 4-connected components of the cell class, per 2-D slice
  (Fiji labels the binarised images with ``connectedComponents(..., 4)``);
* a threshold ``t`` turns a membrane probability into labels: cell where
  ``P(membrane) < t``. Fiji thresholds the cell probability ``1 - P`` with
  ``> th`` for th = 0.0, 0.1, ..., 1.0, which is the same set of label images;
* each error is minimised over the thresholds separately (the challenge's
  "maximal F-score over thresholds"); on a stack, the pair/pixel counts of all
  slices are added before the F-score is taken (Fiji's note: "not an averaged
  F-score").

This module holds the pixel error, the warping error's stack wrapper, the
threshold sweep (one home: :data:`CHALLENGE_THRESHOLDS`, :func:`check_thresholds`,
:func:`cells_at_threshold`, :func:`best_pixel_error`, :func:`isbi_scores`) and
Table 2's IoU and SEG. The Rand and information scores live in ``rand_info``,
the input checks, cells and contingency tables in ``segments``; both are
re-exported here, so ``metrics.rand_error`` or ``metrics.cell_components``
keep working.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .rand_info import (RandScores, adapted_rand_error, rand_error, v_info, v_info_of_cells, v_rand,
                        variation_of_information)
from .segments import (as_stack, cell_components, cells_from_classes, cells_from_prediction, cells_from_probability,
                       check_integer_labels, check_isbi_labels, check_pair, check_probabilities, check_same_shape,
                       contingency)
from .warping import WarpingResult, stack_warping_error

__all__ = [
    # input checks and cells (segments.py)
    "check_isbi_labels", "check_probabilities", "cell_components", "cells_from_classes", "cells_from_prediction",
    "cells_from_probability",
    # Rand and information scores (rand_info.py)
    "RandScores", "adapted_rand_error", "rand_error", "v_rand", "variation_of_information", "v_info",
    # Table 1 at one threshold, and the threshold sweep
    "pixel_error", "warping_error", "WarpingResult", "ISBIScores", "CHALLENGE_THRESHOLDS", "check_thresholds",
    "cells_at_threshold", "best_pixel_error", "isbi_scores", "WARPING_THRESHOLDS",
    # Table 2
    "iou", "seg_score", "merged_objects",
]


# ----------------------------------------------------------------------------- pixel and warping error
def _pixel_counts(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, pixels) with cell as the positive class."""
    tp = int(np.count_nonzero(predicted & truth))
    fp = int(np.count_nonzero(predicted & ~truth))
    fn = int(np.count_nonzero(~predicted & truth))
    return tp, fp, fn, truth.size


def _pixel_error_from_counts(tp: int, fp: int, fn: int, n: int, definition: str) -> float:
    if definition == "fscore":
        return 0.0 if tp + fp + fn == 0 else float((fp + fn) / (2 * tp + fp + fn))
    if definition == "mismatch":
        return float((fp + fn) / n) if n else 0.0
    raise ValueError(f"definition must be 'fscore' or 'mismatch', got {definition!r}.")


def pixel_error(predicted_labels, labels, *, definition: str = "fscore") -> float:
    """Pixel error of Table 1 at one threshold.

    Args:
        predicted_labels, labels: (H, W) or (N, H, W) ISBI class maps (0 =
            membrane, 1 = cell).
        definition: ``"fscore"``: 1 - F-score of the cell class, i.e.
            (FP + FN) / (2 TP + FP + FN), the challenge's "1 - maximal F-score
            of pixel similarity" (Fiji ``PixelError``: cell = positive class,
            counts added over slices). ``"mismatch"``: the fraction of pixels
            whose class differs (Fiji's "squared Euclidean distance" form).

    Returns:
        float in [0, 1]. With no cell pixel in either map the F-score form is 0.
    """
    predicted, truth = check_pair(predicted_labels, labels)
    return _pixel_error_from_counts(*_pixel_counts(predicted, truth), definition)


def warping_error(predicted_labels, labels, *, count: str = "splits_and_mergers", return_warped: bool = False,
                  progress: bool = False) -> WarpingResult:
    """Warping error of Table 1 at one threshold (Jain et al. 2010; see ``warping.py``).

    Args:
        predicted_labels, labels: (H, W) or (N, H, W) ISBI class maps.
        count: ``"splits_and_mergers"`` (default): the ISBI-2012 challenge's
            "minimum splits and mergers" warping error, which counts only the
            pixels of splits and mergers (Fiji ``WarpingError``; see
            ``warping.split_merge_pixels``); a spurious or missing object, a
            filled or added hole cost nothing. ``"all"``: every pixel that still
            differs after warping (Jain et al.'s definition).
        return_warped: keep the warped truth (bool, same shape) in the result.
        progress: show a tqdm bar over the slices.

    Returns:
        :class:`~unet_tutorial.warping.WarpingResult`: the error as a fraction of
        all pixels, after the truth has been warped toward the prediction by
        topology-preserving flips; the numbers of remaining mismatches and of
        split/merger pixels; the counts of splits, merges and objects or holes
        added/removed. Never above the pixel mismatch fraction.
    """
    predicted, truth = check_pair(predicted_labels, labels)
    result = stack_warping_error(truth, predicted, return_warped=return_warped, progress=progress, count=count)
    if return_warped and np.ndim(labels) == 2:
        result = dataclasses.replace(result, warped=result.warped[0])
    return result


# ----------------------------------------------------------------------------- threshold sweep
@dataclasses.dataclass(frozen=True)
class ISBIScores:
    """The ISBI-2012 scores, each at its own best threshold (cell = P(membrane) < threshold)."""

    pixel_error: float  # 1 - max F-score of the cell class (Table 1 "pixel error")
    pixel_error_threshold: float
    pixel_mismatch: float  # min fraction of misclassified pixels (the other published form)
    pixel_mismatch_threshold: float
    rand_error: float  # 1 - max foreground-restricted V_rand (Table 1 "Rand error")
    rand_error_threshold: float
    warping_error: float | None  # min warping error (Table 1 "warping error"); None if skipped
    warping_error_threshold: float | None
    v_rand: float  # max V_rand (= 1 - rand_error; later leaderboard, without thinning)
    v_rand_threshold: float
    v_info: float  # max V_info (later leaderboard, without thinning)
    v_info_threshold: float
    thresholds: tuple[float, ...]  # the thresholds that were tried
    n_slices: int  # number of 2-D slices scored

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# The challenge's thresholds: cell where P(membrane) < t, t = 0.0, 0.1, ..., 1.0 (Fiji thresholds
# the cell probability with "> th" for th = 0.0 ... 1.0, the same 11 label images).
CHALLENGE_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))


# The challenge's warping-error sweep: Fiji's getMinimumSplitsAndMergersErrorValue(0.0, 0.9, 0.1, ...)
# thresholds the cell probability with "> th" for th = 0.0, ..., 0.9, i.e. cell where P(membrane) < 1 - th:
# t = 1.0, 0.9, ..., 0.1. The t = 0.0 of the other sweeps (no cell anywhere) is not among them.
WARPING_THRESHOLDS = CHALLENGE_THRESHOLDS[1:]


def check_thresholds(thresholds=None) -> tuple[float, ...]:
    """The membrane-probability thresholds of a sweep: the challenge's 11 when ``None``, else checked in [0, 1]."""
    thresholds = CHALLENGE_THRESHOLDS if thresholds is None else tuple(float(t) for t in thresholds)
    if not thresholds:
        raise ValueError("thresholds must name at least one value in [0, 1].")
    if min(thresholds) < 0 or max(thresholds) > 1:
        raise ValueError(f"thresholds must lie in [0, 1], got {thresholds}.")
    return thresholds


def cells_at_threshold(membrane, threshold: float) -> np.ndarray:
    """ISBI class labels (uint8: 0 = membrane, 1 = cell) of membrane probabilities: cell where P(membrane) < t."""
    return (np.asarray(membrane) < threshold).astype(np.uint8)


def _best(values: list[float], thresholds, lower_is_better: bool) -> tuple[float, float]:
    """Best value and its threshold; ties go to the first (lowest) threshold."""
    values = np.asarray(values, dtype=np.float64)
    index = int(np.argmin(values) if lower_is_better else np.argmax(values))
    return float(values[index]), float(thresholds[index])


def best_pixel_error(membrane, labels, thresholds=None) -> tuple[float, float]:
    """(min pixel error over the thresholds, its threshold): the sweep that training's held-out score uses."""
    thresholds = check_thresholds(thresholds)
    errors = [pixel_error(cells_at_threshold(membrane, t), labels) for t in thresholds]
    return _best(errors, thresholds, lower_is_better=True)


def isbi_scores(probabilities, labels, thresholds=None, *, warping: bool = True, connectivity: int = 4,
                warping_count: str = "splits_and_mergers", progress: bool = False) -> ISBIScores:
    """Score membrane probabilities like the ISBI-2012 challenge (paper Table 1).

    Args:
        probabilities: (H, W) or (N, H, W) MEMBRANE probabilities in [0, 1]
            (channel 0 of the U-Net's softmax).
        labels: ISBI class labels of the same shape (0 = membrane, 1 = cell).
        thresholds: membrane-probability thresholds; a pixel is cell where
            P(membrane) < t. Default 0.0, 0.1, ..., 1.0 (the challenge's 11),
            and for the warping error 0.1, ..., 1.0 (:data:`WARPING_THRESHOLDS`,
            the challenge's warping sweep). Given thresholds serve every score.
        warping: compute the warping error (the slowest metric).
        warping_count: what the warping error counts (:func:`warping_error`'s ``count``).
        connectivity: connectivity of the cells, 4 (challenge) or 8.
        progress: show a tqdm bar over thresholds.

    Returns:
        :class:`ISBIScores`, each error minimised (each score maximised) over
        the thresholds on its own, as the challenge did.
    """
    probabilities = check_probabilities(probabilities)
    truth = check_isbi_labels(labels)
    check_same_shape(probabilities, truth, ("probabilities", "labels"))
    probabilities, truth = as_stack(probabilities, "probabilities"), as_stack(truth, "labels")
    warping_thresholds = WARPING_THRESHOLDS if thresholds is None else check_thresholds(thresholds)
    thresholds = check_thresholds(thresholds)
    true_cells = cell_components(truth, connectivity)
    curves = {name: [] for name in ("pixel", "mismatch", "rand", "warping", "v_info")}
    steps = thresholds
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(thresholds, desc="ISBI scores", unit="threshold")
    for threshold in steps:
        predicted = cells_at_threshold(probabilities, threshold).astype(bool)
        counts = _pixel_counts(predicted, truth)
        curves["pixel"].append(_pixel_error_from_counts(*counts, "fscore"))
        curves["mismatch"].append(_pixel_error_from_counts(*counts, "mismatch"))
        predicted_cells = cell_components(predicted, connectivity)
        curves["rand"].append(adapted_rand_error(true_cells, predicted_cells).error)
        curves["v_info"].append(v_info_of_cells(true_cells, predicted_cells))
        if warping and threshold in warping_thresholds:
            result = stack_warping_error(truth, predicted, count=warping_count, count_errors=False)
            curves["warping"].append(result.warping_error)
    pixel, pixel_t = _best(curves["pixel"], thresholds, True)
    mismatch, mismatch_t = _best(curves["mismatch"], thresholds, True)
    rand, rand_t = _best(curves["rand"], thresholds, True)
    info, info_t = _best(curves["v_info"], thresholds, False)
    warp, warp_t = _best(curves["warping"], [t for t in thresholds if t in warping_thresholds], True) \
        if warping and curves["warping"] else (None, None)
    return ISBIScores(pixel_error=pixel, pixel_error_threshold=pixel_t, pixel_mismatch=mismatch,
                      pixel_mismatch_threshold=mismatch_t, rand_error=rand, rand_error_threshold=rand_t,
                      warping_error=warp, warping_error_threshold=warp_t, v_rand=1.0 - rand, v_rand_threshold=rand_t,
                      v_info=info, v_info_threshold=info_t, thresholds=thresholds, n_slices=truth.shape[0])


# ----------------------------------------------------------------------------- Table 2
def iou(predicted_classes, true_classes, n_classes: int | None = None, *, ignore=None) -> np.ndarray:
    """Jaccard index (intersection over union) of each class, over all pixels.

    Args:
        predicted_classes, true_classes: integer class maps of the same shape
            (e.g. 0 = background, 1 = cell; for CTC instance masks pass ``mask > 0``).
        n_classes: number of classes (default: 1 + the largest class present).
        ignore: optional bool map of the same shape, True where the true class is
            unknown (e.g. ``annotations.ignore_regions``): those pixels are left out.

    Returns:
        (n_classes,) float64. A class absent from both maps scores 1.0 (nothing
        to get wrong), so the result never holds NaN.

    Note: this is a *semantic* (pixel-class) IoU; for the paper's Table 2 see
    :func:`seg_score`.
    """
    predicted = np.asarray(predicted_classes)
    truth = np.asarray(true_classes)
    check_same_shape(predicted, truth, ("predicted_classes", "true_classes"))
    for array, name in ((predicted, "predicted_classes"), (truth, "true_classes")):
        check_integer_labels(array, name, "class indices")
        if array.size and array.min() < 0:
            raise ValueError(f"{name} must hold class indices >= 0, found {array.min()}.")
    predicted, truth = predicted.astype(np.int64).ravel(), truth.astype(np.int64).ravel()
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        check_same_shape(ignore.reshape(np.shape(true_classes)), np.asarray(true_classes), ("ignore", "true_classes"))
        known = ~ignore.ravel()
        predicted, truth = predicted[known], truth[known]
    largest = int(max(predicted.max(initial=0), truth.max(initial=0)))
    if n_classes is None:
        n_classes = largest + 1
    elif largest >= n_classes:
        raise ValueError(f"found class {largest} but n_classes={n_classes}.")
    confusion = np.bincount(truth * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def seg_score(predicted_instances, true_instances, *, return_per_object: bool = False):
    """The Cell Tracking Challenge SEG measure (Maska et al. 2014; Ulman et al. 2017).

    A true object R is matched to the predicted object S that covers more than
    half of it (|R ∩ S| > 0.5 |R|; at most one S can); its score is the Jaccard
    index |R ∩ S| / |R ∪ S|, or 0 when no predicted object matches. SEG is the
    mean over all true objects (of all frames for a stack).

    This is what the paper's Table 2 reports as "IOU": Sec. 4 calls it the
    "IOU (intersection over union)" of the cell segmentation task of the ISBI
    cell tracking challenge 2015, and that challenge ranked the task by SEG, a
    per-object Jaccard, not by a pixel-class IoU (:func:`iou`). The numbers
    (PhC-U373 0.9203, DIC-HeLa 0.7756) are the challenge's, so they are SEG. The
    two differ: a merge of two touching cells leaves the pixel IoU unchanged
    but halves SEG for those cells, and a missed small cell costs SEG a full
    object. (The paper's own wording does not name SEG; this is our reading.)

    Args:
        predicted_instances, true_instances: (H, W) or (T, H, W) integer
            instance labels, 0 = background; a stack is scored frame by frame.
        return_per_object: also return the (n_true_objects,) scores.

    Returns:
        float in [0, 1] (and the per-object scores). No true object at all:
        1.0 if the prediction is empty as well, else 0.0.
    """
    predicted = np.asarray(predicted_instances)
    truth = np.asarray(true_instances)
    check_same_shape(predicted, truth, ("predicted_instances", "true_instances"))
    for array, name in ((predicted, "predicted_instances"), (truth, "true_instances")):
        check_integer_labels(array, name, "instance labels")
    scores = []
    for frame_pred, frame_true in zip(as_stack(predicted, "predicted_instances"), as_stack(truth, "true_instances")):
        true_ids, predicted_ids, counts = contingency(frame_true, frame_pred)
        true_sizes = np.bincount(true_ids, weights=counts)
        predicted_sizes = np.bincount(predicted_ids, weights=counts)
        objects = np.unique(true_ids[true_ids != 0])
        best = np.zeros(int(true_sizes.size), dtype=np.float64)
        match = (true_ids != 0) & (predicted_ids != 0) & (counts > 0.5 * true_sizes[true_ids])
        overlap = counts[match]
        best[true_ids[match]] = overlap / (true_sizes[true_ids[match]] + predicted_sizes[predicted_ids[match]] - overlap)
        scores.append(best[objects])
    per_object = np.concatenate(scores) if scores else np.zeros(0)
    if per_object.size == 0:
        value = 1.0 if not np.any(predicted) else 0.0
    else:
        value = float(per_object.mean())
    return (value, per_object) if return_per_object else value


def merged_objects(predicted_instances, true_instances) -> int:
    """How many true objects share their predicted object with another true object (merges).

    Each true object R is assigned the predicted object that holds most of its
    pixels; R counts when that predicted object is also the one assigned to
    another true object. Two touching cells predicted as one component count 2.
    This is what drives SEG down while the pixel IoU stays high (see
    :func:`seg_score`). A stack (T, H, W) is counted frame by frame.
    """
    predicted = np.asarray(predicted_instances)
    truth = np.asarray(true_instances)
    check_same_shape(predicted, truth, ("predicted_instances", "true_instances"))
    for array, name in ((predicted, "predicted_instances"), (truth, "true_instances")):
        check_integer_labels(array, name, "instance labels")
    merged = 0
    for frame_pred, frame_true in zip(as_stack(predicted, "predicted_instances"), as_stack(truth, "true_instances")):
        true_ids, predicted_ids, counts = contingency(frame_true, frame_pred)
        assigned = {}  # true object -> (pixels, predicted object)
        for true_id, predicted_id, count in zip(true_ids, predicted_ids, counts):
            if true_id != 0 and predicted_id != 0 and count > assigned.get(true_id, (0, 0))[0]:
                assigned[true_id] = (count, predicted_id)
        owners = np.array([predicted_id for _, predicted_id in assigned.values()], dtype=np.int64)
        _, shared = np.unique(owners, return_counts=True)
        merged += int(shared[shared > 1].sum())
    return merged
