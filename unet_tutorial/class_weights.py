"""The weight map of Eq. 2 for any number of classes K (Ronneberger et al. 2015, Sec. 3).

``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))`` as in
:func:`weights.weight_map`, with the two parts read for K classes:

* ``w_c`` balances all K classes: ``N / (K_present * N_c)``, mean 1 over the
  image, every present class contributing equally (K = 2 gives
  ``weights.class_balance_weights``).
* The border term comes from instances: the user's instance masks when given,
  else the 4-connected components of each foreground class (1..K-1) on its own,
  so that two touching objects of different classes stay two objects. It is
  added on class-0 pixels, as the two-class map adds it on background.

For K = 2 this is exactly ``weights.weight_map`` of the components of the
cell class. Not in the paper, which has two classes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .weights import weight_map

__all__ = ["class_balance_k", "instances_of_classes", "class_weight_map"]


def class_balance_k(labels, n_classes: int) -> np.ndarray:
    """(H, W) float32 ``w_c``: inverse frequency of each present class, normalised to mean 1."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(len(counts))
    per_class[present] = labels.size / (present.sum() * counts[present])
    return per_class[labels].astype(np.float32)


def instances_of_classes(labels) -> np.ndarray:
    """(H, W) int32 instances: the 4-connected components of each class > 0, numbered 1..n across classes."""
    labels = np.asarray(labels)
    instances = np.zeros(labels.shape, np.int32)
    count = 0
    for value in np.unique(labels[labels > 0]):
        components, found = ndimage.label(labels == value)
        instances[components > 0] = components[components > 0] + count
        count += found
    return instances


def class_weight_map(labels, n_classes: int, instances=None, *, w0: float = 10.0, sigma: float = 5.0,
                     class_balance: bool = True) -> np.ndarray:
    """(H, W) float32 weight map for K-class labels (see the module docstring).

    Args:
        labels: (H, W) integer classes 0..n_classes-1 (0 = background).
        n_classes: K.
        instances: optional (H, W) instance labels (0 = none); default: the
            components of each foreground class (:func:`instances_of_classes`).
        w0, sigma, class_balance: as in ``weights.weight_map``.
    """
    labels = np.asarray(labels)
    cells = instances_of_classes(labels) if instances is None else np.asarray(instances)
    if cells.shape != labels.shape:
        raise ValueError(f"instances have shape {cells.shape}, expected the labels' {labels.shape}.")
    weights = class_balance_k(labels, n_classes) if class_balance else np.ones(labels.shape, np.float32)
    border = weight_map(cells, w0=w0, sigma=sigma, class_balance=False) - 1.0  # the border term alone
    return (weights + np.where(labels == 0, border, 0.0)).astype(np.float32)
