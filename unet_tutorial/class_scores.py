"""Scores per class for K-class segmentation: IoU and Dice of each class, their mean, and SEG per object class.

* IoU (Jaccard) of class c: |P_c ∩ T_c| / |P_c ∪ T_c| over all pixels
  (``metrics.iou``); Dice (F1) of class c: 2|P_c ∩ T_c| / (|P_c| + |T_c|) =
  2 IoU / (1 + IoU). A class absent from both prediction and truth scores 1.
* The means are over the classes, background included (mean IoU, "mIoU").
* SEG (Cell Tracking Challenge, ``metrics.seg_score``) of each foreground
  class, with the 4-connected components of that class as its objects (or the
  given instance masks): how well single objects are found, which pixel scores
  cannot tell (two touching objects merged into one lose SEG, not IoU).
"""

from __future__ import annotations

import numpy as np

from .metrics import iou, seg_score
from .segments import cell_components

__all__ = ["per_class_scores", "format_class_table"]


def _as_maps(maps) -> list[np.ndarray]:
    """A list of (H, W) maps from one map, a stack or a list."""
    if isinstance(maps, (list, tuple)):
        return [np.asarray(m) for m in maps]
    maps = np.asarray(maps)
    return [maps] if maps.ndim == 2 else list(maps)


def per_class_scores(predicted, truth, n_classes: int, class_names=None, *, instances=None) -> list[dict]:
    """One row per class and a last "mean" row: ``{"class", "name", "iou", "dice", "seg", "pixels"}``.

    Args:
        predicted, truth: (H, W) or (N, H, W) integer class maps (or lists of
            (H, W) maps of different sizes).
        n_classes: K.
        class_names: optional K names (default "class 0", ...).
        instances: optional true instance maps of the same shapes; SEG then uses
            them as the objects of every foreground class.
    """
    predicted, truth = _as_maps(predicted), _as_maps(truth)
    if len(predicted) != len(truth):
        raise ValueError(f"got {len(predicted)} predictions but {len(truth)} masks.")
    names = list(class_names) if class_names is not None else [f"class {c}" for c in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"got {len(names)} class names for {n_classes} classes.")
    flat_p = np.concatenate([p.ravel() for p in predicted])
    flat_t = np.concatenate([t.ravel() for t in truth])
    ious = iou(flat_p, flat_t, n_classes=n_classes)
    pixels = np.bincount(flat_t.astype(np.int64), minlength=n_classes)
    rows = []
    for c in range(n_classes):
        seg = None
        if c > 0:
            true_objects = [cell_components(t == c) if instances is None else np.where(t == c, i, 0)
                            for t, i in zip(truth, instances if instances is not None else truth)]
            objects = [seg_score(cell_components(p == c), o, return_per_object=True)[1] for p, o in zip(predicted, true_objects)]
            per_object = np.concatenate(objects)
            seg = float(per_object.mean()) if per_object.size else None
        rows.append({"class": c, "name": names[c], "iou": float(ious[c]), "dice": float(2 * ious[c] / (1 + ious[c])),
                     "seg": seg, "pixels": int(pixels[c])})
    segs = [row["seg"] for row in rows if row["seg"] is not None]
    rows.append({"class": None, "name": "mean", "iou": float(np.mean(ious)),
                 "dice": float(np.mean([row["dice"] for row in rows])),
                 "seg": float(np.mean(segs)) if segs else None, "pixels": int(pixels.sum())})
    return rows


def format_class_table(rows: list[dict]) -> str:
    """The rows of :func:`per_class_scores` as an aligned text table."""
    header = ("class", "name", "IoU", "Dice", "SEG", "true pixels")
    cells = [("" if r["class"] is None else str(r["class"]), r["name"], f"{r['iou']:.4f}", f"{r['dice']:.4f}",
              "-" if r["seg"] is None else f"{r['seg']:.4f}", str(r["pixels"])) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths)) for c in cells]
    return "\n".join(lines) + "\n"
