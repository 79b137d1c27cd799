"""The Rand and information scores: how well two segmentations group the same pixels.

Table 1's Rand error and the later leaderboard's V_rand and V_info
(Arganda-Carreras et al., Frontiers in Neuroanatomy 9:142, 2015, Sec. 2.2), and
the variation of information (Meila 2003). Each compares *segments* (which
pixels belong together), not classes, so each starts from the cells of both
label maps (``segments.cell_components``) and their contingency table
(``segments.contingency``). ``metrics`` re-exports every public name here.

The challenge's conventions (Fiji ``RandError``): only pixels inside true cells
count (foreground restriction), and a predicted membrane pixel there is a
segment of its own (a *singleton*).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage import metrics as skimage_metrics

from .segments import cell_components, check_pair, check_same_shape, contingency


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

    Kept beside scikit-image's function because the challenge's convention
    (singletons, self pairs) is not one of its options; a test checks that the
    two agree where they should.
    """
    true_segmentation = np.asarray(true_segmentation)
    predicted_segmentation = np.asarray(predicted_segmentation)
    check_same_shape(true_segmentation, predicted_segmentation, ("true_segmentation", "predicted_segmentation"))
    table = contingency(true_segmentation, predicted_segmentation)
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
    predicted, truth = check_pair(predicted_labels, labels)
    return adapted_rand_error(cell_components(truth, connectivity), cell_components(predicted, connectivity)).error


def v_rand(predicted_labels, labels, *, connectivity: int = 4) -> float:
    """V_rand of the later challenge leaderboard (higher is better): 1 - :func:`rand_error`.

    Departure: the leaderboard after 2013 first thins the membranes to one
    pixel ("after thinning"); that step is not implemented here.
    """
    return 1.0 - rand_error(predicted_labels, labels, connectivity=connectivity)


# ----------------------------------------------------------------------------- information
def variation_of_information(true_segmentation, predicted_segmentation, *, ignore_true_background: bool = False):
    """Split and merge parts of the variation of information (Meila 2003), in bits.

    This is ``skimage.metrics.variation_of_information`` with the package's
    shape check and argument name; no chapter re-derives it, so the library
    computes it.

    Args:
        true_segmentation, predicted_segmentation: integer label images, same shape.
        ignore_true_background: drop the pixels where the truth is 0 (the
            foreground restriction of Arganda-Carreras et al. 2015).

    Returns:
        (split, merge) = (H(predicted | true), H(true | predicted)); their sum is
        the VI. Empty input (or no true foreground when it is ignored): (0.0, 0.0).
    """
    true_segmentation = np.asarray(true_segmentation)
    predicted_segmentation = np.asarray(predicted_segmentation)
    check_same_shape(true_segmentation, predicted_segmentation, ("true_segmentation", "predicted_segmentation"))
    ignore = (0,) if ignore_true_background else ()
    if not np.isin(true_segmentation, ignore, invert=True).any():
        return 0.0, 0.0  # no pixel left to compare (the library would divide by zero)
    split, merge = skimage_metrics.variation_of_information(true_segmentation, predicted_segmentation,
                                                            ignore_labels=ignore)
    return max(float(split), 0.0), max(float(merge), 0.0)


def _entropy(counts: np.ndarray, n: float) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum())


def v_info_of_cells(true_cells: np.ndarray, predicted_cells: np.ndarray) -> float:
    """:func:`v_info` of two cell label maps (``cell_components`` of truth and prediction)."""
    true_ids, predicted_ids, counts = contingency(true_cells, predicted_cells)
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


def v_info(predicted_labels, labels, *, connectivity: int = 4) -> float:
    """Foreground-restricted information-theoretic score V_info (higher is better).

    Arganda-Carreras et al. 2015, Sec. 2.2.2: V_info = I(S; T) / (H(S)/2 + H(T)/2)
    over the true cells' pixels, with predicted membrane pixels there as
    singletons (as for V_rand). On a stack the cells of each slice are
    separate segments and the entropies are taken over the pooled pixels of all
    slices. Defined as 1.0 when both entropies are 0 (one segment each, i.e.
    identical) and when the truth has no cell pixels.
    Departure: no membrane thinning (see :func:`v_rand`). The singletons are
    why this is not scikit-image's VI: each adds log2(n) / n of entropy.
    """
    predicted, truth = check_pair(predicted_labels, labels)
    return v_info_of_cells(cell_components(truth, connectivity), cell_components(predicted, connectivity))
