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
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from .warping import WarpingResult, binary_warping_error, sum_results

_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
_EIGHT = np.ones((3, 3), dtype=bool)


# ----------------------------------------------------------------------------- input checks
def _as_stack(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W) -> (1, H, W); (N, H, W) unchanged; anything else is an error."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return array
    raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {array.shape}. "
                     "For a (H, W, 2) softmax output pass channel 0, the membrane probability.")


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
                         "they must cover the same pixels (crop or pad one of them).")


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


def _check_pair(predicted_labels, labels) -> tuple[np.ndarray, np.ndarray]:
    """Both ISBI label maps as (N, H, W) bool cell masks of equal shape."""
    predicted = check_isbi_labels(predicted_labels, "predicted_labels")
    truth = check_isbi_labels(labels, "labels")
    _check_same_shape(predicted, truth, ("predicted_labels", "labels"))
    return _as_stack(predicted, "predicted_labels"), _as_stack(truth, "labels")


def cell_components(cell_mask: np.ndarray, connectivity: int = 4) -> np.ndarray:
    """Label the cells (connected components of the cell class) of each slice.

    Args:
        cell_mask: (H, W) or (N, H, W) bool, True = cell.
        connectivity: 4 (the challenge's choice) or 8.

    Returns:
        int32 array of the same shape: 0 = membrane, 1..n = cells, numbered
        across the whole stack so that no two slices share a label.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}.")
    structure = _FOUR if connectivity == 4 else _EIGHT
    stack = _as_stack(np.asarray(cell_mask, dtype=bool), "cell_mask")
    out = np.zeros(stack.shape, dtype=np.int32)
    offset = 0
    for index, cells in enumerate(stack):
        labelled, n = ndimage.label(cells, structure=structure)
        out[index] = np.where(labelled > 0, labelled + offset, 0)
        offset += n
    return out.reshape(np.shape(cell_mask))


def _contingency(true_segmentation: np.ndarray, predicted_segmentation: np.ndarray):
    """Sparse contingency table as (true label, predicted label, pixel count) triplets."""
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


# ----------------------------------------------------------------------------- Rand
@dataclasses.dataclass(frozen=True)
class RandScores:
    """Foreground-restricted Rand scores (Arganda-Carreras et al. 2015, Eq. 4-6)."""

    error: float  # 1 - F-score ("adapted Rand error"; 0 = perfect)
    precision: float  # pairs in one predicted segment that are also in one true segment
    recall: float  # pairs in one true segment that are also in one predicted segment

    @property
    def f_score(self) -> float:
        """V_rand: the F-score of precision and recall (1 = perfect)."""
        return 1.0 - self.error


def _rand_from_table(true_ids, predicted_ids, counts, prediction_background: str, self_pairs: bool) -> RandScores:
    inside = true_ids != 0  # restrict to the foreground of the truth
    true_ids, predicted_ids, counts = true_ids[inside], predicted_ids[inside], counts[inside]
    n = counts.sum()
    sum_true = np.square(np.bincount(true_ids, weights=counts)).sum()
    if prediction_background == "singletons":
        background = predicted_ids == 0
        n_background = counts[background].sum()
        sum_predicted = np.square(np.bincount(predicted_ids[~background], weights=counts[~background])).sum() + n_background
        sum_both = np.square(counts[~background]).sum() + n_background
    elif prediction_background == "label":
        sum_predicted = np.square(np.bincount(predicted_ids, weights=counts)).sum()
        sum_both = np.square(counts).sum()
    else:
        raise ValueError(f"prediction_background must be 'singletons' or 'label', got {prediction_background!r}.")
    if not self_pairs:  # count only pairs of two different pixels
        sum_true, sum_predicted, sum_both = sum_true - n, sum_predicted - n, sum_both - n
    if sum_true + sum_predicted <= 0:
        # no pair to judge (empty or single-pixel truth foreground): nothing is wrong
        return RandScores(error=0.0, precision=1.0, recall=1.0)
    precision = sum_both / sum_predicted if sum_predicted > 0 else 1.0
    recall = sum_both / sum_true if sum_true > 0 else 1.0
    return RandScores(error=float(1.0 - 2.0 * sum_both / (sum_true + sum_predicted)),
                      precision=float(precision), recall=float(recall))


def adapted_rand_error(true_segmentation, predicted_segmentation, *, prediction_background: str = "singletons",
                       self_pairs: bool = True) -> RandScores:
    """Foreground-restricted ("adapted") Rand error of two instance segmentations.

    Arganda-Carreras et al. 2015, Sec. 2.2.1: pixel pairs are counted only where
    the truth is foreground (label != 0); with ``n_ij`` the contingency table,
    ``a_i``/``b_j`` its row/column sums, V_rand = 2 sum n_ij^2 / (sum a_i^2 +
    sum b_j^2) and the error is 1 - V_rand.

    Args:
        true_segmentation, predicted_segmentation: integer label images of the
            same shape (any number of dimensions), 0 = background.
        prediction_background: how predicted background pixels (label 0) that
            lie in the true foreground count. ``"singletons"`` (Fiji, the
            challenge): each is its own segment. ``"label"`` (scikit-image's
            ``adapted_rand_error``): 0 is one more segment.
        self_pairs: True counts a pixel paired with itself (Fiji's N^2
            normalisation); False counts pairs of distinct pixels only
            (scikit-image).  ``prediction_background="label", self_pairs=False``
            reproduces ``skimage.metrics.adapted_rand_error(true, pred)``.

    Returns:
        :class:`RandScores`. Empty truth foreground: error 0, precision = recall = 1.
    """
    true_segmentation = np.asarray(true_segmentation)
    predicted_segmentation = np.asarray(predicted_segmentation)
    _check_same_shape(true_segmentation, predicted_segmentation, ("true_segmentation", "predicted_segmentation"))
    table = _contingency(true_segmentation, predicted_segmentation)
    return _rand_from_table(*table, prediction_background=prediction_background, self_pairs=self_pairs)


def rand_error(predicted_labels, labels, *, connectivity: int = 4) -> float:
    """Rand error of Table 1 at one threshold: 1 - foreground-restricted V_rand.

    Args:
        predicted_labels, labels: (H, W) or (N, H, W) ISBI class maps (0 =
            membrane, 1 = cell). Cells are connected components per slice;
            predicted membrane inside true cells counts as singletons (Fiji).
        connectivity: 4 (challenge) or 8.

    Returns:
        float in [0, 1]; 0 when the predicted cells equal the true cells.
    """
    predicted, truth = _check_pair(predicted_labels, labels)
    return adapted_rand_error(cell_components(truth, connectivity), cell_components(predicted, connectivity)).error


def v_rand(predicted_labels, labels, *, connectivity: int = 4) -> float:
    """V_rand of the later challenge leaderboard (higher is better): 1 - :func:`rand_error`.

    Departure: the leaderboard after 2013 first thins the membranes to one
    pixel ("after thinning"); that step is not implemented here.
    """
    return 1.0 - rand_error(predicted_labels, labels, connectivity=connectivity)


# ----------------------------------------------------------------------------- information
def _entropy(counts: np.ndarray, n: float) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum())


def variation_of_information(true_segmentation, predicted_segmentation, *, ignore_true_background: bool = False):
    """Split and merge parts of the variation of information (Meila 2003), in bits.

    Args:
        true_segmentation, predicted_segmentation: integer label images, same shape.
        ignore_true_background: drop the pixels where the truth is 0 (the
            foreground restriction of Arganda-Carreras et al. 2015).

    Returns:
        (split, merge) = (H(predicted | true), H(true | predicted)); their sum is
        the VI. Same order and values as ``skimage.metrics.variation_of_information(
        true, predicted, ignore_labels=(0,) if ignore_true_background else ())``.
        Empty input: (0.0, 0.0).
    """
    true_segmentation = np.asarray(true_segmentation)
    predicted_segmentation = np.asarray(predicted_segmentation)
    _check_same_shape(true_segmentation, predicted_segmentation, ("true_segmentation", "predicted_segmentation"))
    true_ids, predicted_ids, counts = _contingency(true_segmentation, predicted_segmentation)
    if ignore_true_background:
        keep = true_ids != 0
        true_ids, predicted_ids, counts = true_ids[keep], predicted_ids[keep], counts[keep]
    n = counts.sum()
    if n == 0:
        return 0.0, 0.0
    h_joint = _entropy(counts, n)
    h_true = _entropy(np.bincount(true_ids, weights=counts), n)
    h_predicted = _entropy(np.bincount(predicted_ids, weights=counts), n)
    return max(h_joint - h_true, 0.0), max(h_joint - h_predicted, 0.0)


def v_info(predicted_labels, labels, *, connectivity: int = 4) -> float:
    """Foreground-restricted information-theoretic score V_info (higher is better).

    Arganda-Carreras et al. 2015, Sec. 2.2.2: V_info = I(S; T) / (H(S)/2 + H(T)/2)
    over the true cells' pixels, with predicted membrane pixels there as
    singletons (as for V_rand). On a stack the cells of each slice are
    separate segments and the entropies are taken over the pooled pixels of all
    slices. Defined as 1.0 when both entropies are 0 (one segment each, i.e.
    identical) and when the truth has no cell pixels.
    Departure: no membrane thinning (see :func:`v_rand`).
    """
    predicted, truth = _check_pair(predicted_labels, labels)
    true_ids, predicted_ids, counts = _contingency(cell_components(truth, connectivity),
                                                   cell_components(predicted, connectivity))
    keep = true_ids != 0
    true_ids, predicted_ids, counts = true_ids[keep], predicted_ids[keep], counts[keep]
    n = counts.sum()
    if n == 0:
        return 1.0
    background = predicted_ids == 0
    n_singletons = counts[background].sum()
    singleton_entropy = n_singletons / n * np.log2(n)  # each singleton has probability 1/n
    h_true = _entropy(np.bincount(true_ids, weights=counts), n)
    h_predicted = _entropy(np.bincount(predicted_ids[~background], weights=counts[~background]), n) + singleton_entropy
    h_joint = _entropy(counts[~background], n) + singleton_entropy
    denominator = h_true + h_predicted
    if denominator <= 0:
        return 1.0
    return float(np.clip(2.0 * (h_true + h_predicted - h_joint) / denominator, 0.0, 1.0))


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
    predicted, truth = _check_pair(predicted_labels, labels)
    return _pixel_error_from_counts(*_pixel_counts(predicted, truth), definition)


def warping_error(predicted_labels, labels, *, return_warped: bool = False, progress: bool = False) -> WarpingResult:
    """Warping error of Table 1 at one threshold (Jain et al. 2010; see ``warping.py``).

    Args:
        predicted_labels, labels: (H, W) or (N, H, W) ISBI class maps.
        return_warped: keep the warped truth (bool, same shape) in the result.
        progress: show a tqdm bar over the slices.

    Returns:
        :class:`~unet_tutorial.warping.WarpingResult`: the fraction of pixels that
        still differ after the truth has been warped toward the prediction by
        topology-preserving flips, and the counts of splits, merges and objects
        or holes added/removed. Never above the pixel mismatch fraction.
    """
    predicted, truth = _check_pair(predicted_labels, labels)
    slices = range(truth.shape[0])
    if progress:
        from tqdm.auto import tqdm
        slices = tqdm(slices, desc="warping error", unit="slice")
    results = [binary_warping_error(truth[i], predicted[i], return_warped=return_warped) for i in slices]
    result = sum_results(results, truth.size)
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
                progress: bool = False) -> ISBIScores:
    """Score membrane probabilities like the ISBI-2012 challenge (paper Table 1).

    Args:
        probabilities: (H, W) or (N, H, W) MEMBRANE probabilities in [0, 1]
            (channel 0 of the U-Net's softmax).
        labels: ISBI class labels of the same shape (0 = membrane, 1 = cell).
        thresholds: membrane-probability thresholds; a pixel is cell where
            P(membrane) < t. Default 0.0, 0.1, ..., 1.0 (the challenge's 11).
        warping: compute the warping error (the slowest metric).
        connectivity: connectivity of the cells, 4 (challenge) or 8.
        progress: show a tqdm bar over thresholds.

    Returns:
        :class:`ISBIScores`, each error minimised (each score maximised) over
        the thresholds on its own, as the challenge did.
    """
    probabilities = check_probabilities(probabilities)
    truth = check_isbi_labels(labels)
    _check_same_shape(probabilities, truth, ("probabilities", "labels"))
    probabilities, truth = _as_stack(probabilities, "probabilities"), _as_stack(truth, "labels")
    thresholds = check_thresholds(thresholds)
    true_cells = cell_components(truth, connectivity)
    curves = {name: [] for name in ("pixel", "mismatch", "rand", "warping", "v_info")}
    steps = thresholds
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(thresholds, desc="ISBI scores", unit="threshold")
    for threshold in steps:
        predicted = probabilities < threshold
        counts = _pixel_counts(predicted, truth)
        curves["pixel"].append(_pixel_error_from_counts(*counts, "fscore"))
        curves["mismatch"].append(_pixel_error_from_counts(*counts, "mismatch"))
        curves["rand"].append(adapted_rand_error(true_cells, cell_components(predicted, connectivity)).error)
        curves["v_info"].append(v_info(predicted, truth, connectivity=connectivity))
        if warping:
            curves["warping"].append(sum_results(
                [binary_warping_error(truth[i], predicted[i]) for i in range(truth.shape[0])], truth.size).warping_error)
    pixel, pixel_t = _best(curves["pixel"], thresholds, True)
    mismatch, mismatch_t = _best(curves["mismatch"], thresholds, True)
    rand, rand_t = _best(curves["rand"], thresholds, True)
    info, info_t = _best(curves["v_info"], thresholds, False)
    warp, warp_t = _best(curves["warping"], thresholds, True) if warping else (None, None)
    return ISBIScores(pixel_error=pixel, pixel_error_threshold=pixel_t, pixel_mismatch=mismatch,
                      pixel_mismatch_threshold=mismatch_t, rand_error=rand, rand_error_threshold=rand_t,
                      warping_error=warp, warping_error_threshold=warp_t, v_rand=1.0 - rand, v_rand_threshold=rand_t,
                      v_info=info, v_info_threshold=info_t, thresholds=thresholds, n_slices=truth.shape[0])


# ----------------------------------------------------------------------------- Table 2
def iou(predicted_classes, true_classes, n_classes: int | None = None) -> np.ndarray:
    """Jaccard index (intersection over union) of each class, over all pixels.

    Args:
        predicted_classes, true_classes: integer class maps of the same shape
            (e.g. 0 = background, 1 = cell; for CTC instance masks pass ``mask > 0``).
        n_classes: number of classes (default: 1 + the largest class present).

    Returns:
        (n_classes,) float64. A class absent from both maps scores 1.0 (nothing
        to get wrong), so the result never holds NaN.

    Note: this is a *semantic* (pixel-class) IoU; for the paper's Table 2 see
    :func:`seg_score`.
    """
    predicted = np.asarray(predicted_classes)
    truth = np.asarray(true_classes)
    _check_same_shape(predicted, truth, ("predicted_classes", "true_classes"))
    for array, name in ((predicted, "predicted_classes"), (truth, "true_classes")):
        if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got dtype {array.dtype}.")
        if array.size and array.min() < 0:
            raise ValueError(f"{name} must hold class indices >= 0, found {array.min()}.")
    predicted, truth = predicted.astype(np.int64).ravel(), truth.astype(np.int64).ravel()
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
    _check_same_shape(predicted, truth, ("predicted_instances", "true_instances"))
    for array, name in ((predicted, "predicted_instances"), (truth, "true_instances")):
        if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must be integer instance labels, got dtype {array.dtype}.")
    scores = []
    for frame_pred, frame_true in zip(_as_stack(predicted, "predicted_instances"), _as_stack(truth, "true_instances")):
        true_ids, predicted_ids, counts = _contingency(frame_true, frame_pred)
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
