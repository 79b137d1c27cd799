"""Arrays to pictures and scores for the viewers: no widgets here, only numpy, PIL and matplotlib.

The live viewers (``widgets.py``) and the static ones (``static_widgets.py``)
show the same views; this module makes them: grey images, binary maps, error
overlays and colour maps as PNG/JPEG bytes, the pixel and Rand error of a
slice, and the error-versus-threshold curve.

Conventions (as in ``metrics.py``): ISBI labels are class indices, 0 =
membrane, 1 = cell; a prediction is the MEMBRANE probability (channel 0 of
the U-Net's softmax); a pixel is cell where ``P(membrane) < threshold``
(``metrics.cells_at_threshold``). Error overlay colours: **false membrane**
(predicted membrane where the truth says cell) in red, **missed membrane**
(truth membrane predicted as cell) in cyan. A missed membrane can merge two
cells, which the Rand error punishes far more than the pixel error does
(Ronneberger et al. 2015, Sec. 4, Table 1).
"""

from __future__ import annotations

import io

import numpy as np

from . import metrics
from .augment import elastic_deform

__all__ = [
    "FALSE_MEMBRANE_RGB", "MISSED_MEMBRANE_RGB", "colormap_rgb", "encode_image", "error_masks", "error_overlay",
    "membrane_to_labels", "slice_scores", "threshold_curve", "to_grey_uint8",
]

FALSE_MEMBRANE_RGB = (255, 40, 40)  # predicted membrane, truth cell
MISSED_MEMBRANE_RGB = (0, 220, 255)  # truth membrane, predicted cell
PANEL_PX = 256  # display width of one panel in CSS pixels
# The default thresholds of the curve: ten values between the challenge's eleven (0.0, 0.1, ..., 1.0),
# so that the slider never sits on "all membrane" (0) or "all cell" (1).
CURVE_THRESHOLDS = tuple(round(0.05 + 0.1 * i, 2) for i in range(10))


# ----------------------------------------------------------------------------- input checks
def check_stack(array, name: str, ndim: int = 3) -> np.ndarray:
    """One (H, W) picture or an (N, H, W) stack, as a stack."""
    array = np.asarray(array)
    if array.ndim == ndim - 1:
        array = array[None]
    if array.ndim != ndim:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {array.shape}. "
                         "For a (N, H, W, 2) softmax output pass [..., 0], the membrane probability.")
    return array


def check_triplet(images, labels, membrane):
    """Images, ISBI labels (uint8) and membrane probabilities (float32) of the same (N, H, W) slices."""
    images = check_stack(images, "images")
    labels = check_stack(labels, "labels")
    membrane = check_stack(membrane, "membrane")
    if not (images.shape == labels.shape == membrane.shape):
        raise ValueError(f"images {images.shape}, labels {labels.shape} and membrane {membrane.shape} "
                         "must have the same (N, H, W) shape: pass the slices that the predictions belong to.")
    metrics.check_isbi_labels(labels)
    membrane = metrics.check_probabilities(membrane.astype(np.float32))
    return images, labels.astype(np.uint8), membrane


def check_threshold(threshold: float) -> float:
    """One membrane-probability threshold, checked like every threshold of the sweep."""
    return metrics.check_thresholds([threshold])[0]


# ----------------------------------------------------------------------------- arrays -> pictures
def to_grey_uint8(image) -> np.ndarray:
    """(H, W) image of any numeric dtype -> uint8 0..255 (uint8 kept, floats taken as [0, 1])."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float64) / max(1, int(np.iinfo(image.dtype).max))
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def membrane_to_labels(membrane, threshold: float = 0.5) -> np.ndarray:
    """Binarise a membrane probability: 1 (cell) where ``P(membrane) < threshold``, else 0 (membrane).

    Args:
        membrane: (H, W) or (N, H, W) float membrane probability in [0, 1].
        threshold: in [0, 1]; 0 makes everything membrane, 1 (almost) everything cell.

    Returns:
        uint8 ISBI class labels of the same shape.
    """
    return metrics.cells_at_threshold(membrane, check_threshold(threshold))


def error_masks(predicted_labels, labels) -> tuple[np.ndarray, np.ndarray]:
    """(false_membrane, missed_membrane) bool masks of a prediction against ISBI labels."""
    predicted_labels, labels = np.asarray(predicted_labels), np.asarray(labels)
    if predicted_labels.shape != labels.shape:
        raise ValueError(f"predicted_labels {predicted_labels.shape} and labels {labels.shape} must have the same shape.")
    false_membrane = (predicted_labels == 0) & (labels == 1)
    missed_membrane = (predicted_labels == 1) & (labels == 0)
    return false_membrane, missed_membrane


def error_overlay(image, predicted_labels, labels, opacity: float = 0.7) -> np.ndarray:
    """The image in grey with the errors painted on top.

    Args:
        image: (H, W) grey image (uint8, or float in [0, 1]).
        predicted_labels, labels: (H, W) ISBI class labels (0 membrane, 1 cell).
        opacity: 0 shows only the image, 1 paints error pixels in pure colour.

    Returns:
        (H, W, 3) uint8 RGB: false membrane red, missed membrane cyan.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}.")
    grey = to_grey_uint8(image).astype(np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    false_membrane, missed_membrane = error_masks(predicted_labels, labels)
    for mask, colour in ((false_membrane, FALSE_MEMBRANE_RGB), (missed_membrane, MISSED_MEMBRANE_RGB)):
        rgb[mask] = (1.0 - opacity) * rgb[mask] + opacity * np.asarray(colour, dtype=np.float32)
    return np.round(rgb).astype(np.uint8)


def colormap_rgb(values, vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis") -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 through a matplotlib colour map."""
    from matplotlib import colormaps

    values = np.asarray(values, dtype=np.float64)
    vmin = float(values.min()) if vmin is None else vmin
    vmax = float(values.max()) if vmax is None else vmax
    scaled = (values - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(values)
    return np.round(colormaps[cmap](np.clip(scaled, 0, 1))[..., :3] * 255).astype(np.uint8)


def encode_image(array, size: int | None = None, fmt: str = "png", quality: int = 75) -> bytes:
    """Encode an (H, W) or (H, W, 3) array as PNG or JPEG bytes, optionally downscaled.

    Args:
        array: uint8 (or bool / float in [0, 1]) image.
        size: longest side in pixels after downscaling (area averaging); None keeps it.
        fmt: ``"png"`` (exact; best for label maps) or ``"jpeg"`` (small; for
            grey-value images and overlays).
        quality: JPEG quality.
    """
    from PIL import Image

    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}.")
    array = np.asarray(array)
    picture = Image.fromarray(array if array.dtype == np.uint8 and array.ndim == 3 else to_grey_uint8(array))
    if size is not None and max(picture.size) > size:
        scale = size / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 Image.Resampling.BOX)
    buffer = io.BytesIO()
    if fmt == "png":
        picture.save(buffer, format="PNG", optimize=True)
    else:
        picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- scores
def slice_scores(predicted_labels, labels) -> dict:
    """Pixel error and Rand error (metrics.py definitions) of one slice or a stack."""
    return {"pixel_error": metrics.pixel_error(predicted_labels, labels),
            "rand_error": metrics.rand_error(predicted_labels, labels)}


def threshold_curve(membrane, labels, thresholds=None) -> dict:
    """Pixel and Rand error of ``membrane < t`` for each threshold t.

    Args:
        membrane: (H, W) or (N, H, W) membrane probability.
        labels: ISBI labels of the same shape.
        thresholds: default 0.05, 0.15, ..., 0.95 (ten values).

    Returns:
        dict with ``thresholds``, ``pixel_error`` and ``rand_error`` (lists of floats).
    """
    chosen = CURVE_THRESHOLDS if thresholds is None else [round(float(t), 4) for t in thresholds]
    thresholds = list(metrics.check_thresholds(chosen))
    scores = [slice_scores(metrics.cells_at_threshold(membrane, t), labels) for t in thresholds]
    return {"thresholds": thresholds,
            "pixel_error": [s["pixel_error"] for s in scores],
            "rand_error": [s["rand_error"] for s in scores]}


def curve_png(curve: dict, current: float | None, title: str = "") -> bytes:
    """The error-versus-threshold curve of :func:`threshold_curve`, the current threshold marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.6, 2.6))
    ax.plot(curve["thresholds"], curve["pixel_error"], "o-", ms=3, label="pixel error")
    ax.plot(curve["thresholds"], curve["rand_error"], "s-", ms=3, label="Rand error")
    if current is not None:
        ax.axvline(current, color="k", lw=1, ls="--")
        index = int(np.argmin(np.abs(np.asarray(curve["thresholds"]) - current)))
        for key, colour in (("pixel_error", "C0"), ("rand_error", "C1")):
            ax.plot([curve["thresholds"][index]], [curve[key][index]], "o", ms=9, mfc="none", mec=colour, mew=2)
    ax.set_xlabel("threshold on P(membrane)")
    ax.set_ylabel("error")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center")
    ax.grid(alpha=0.3)
    return figure_png(fig)


def scores_html(scores: dict, prefix: str = "") -> str:
    """One line of HTML with the pixel and Rand error."""
    return (f"{prefix}pixel error <b>{scores['pixel_error']:.3f}</b> · "
            f"Rand error <b>{scores['rand_error']:.3f}</b>")


# ----------------------------------------------------------------------------- training history
def metric_groups(history: dict) -> list[str]:
    """Base metric names (``loss``, ``accuracy``...) with their ``val_`` partners grouped."""
    groups = [k for k in history if not k.startswith("val_")] or list(history)
    return sorted(groups, key=lambda k: (k != "loss", groups.index(k)))  # the loss first


def history_png(history: dict, metric: str, log_scale: bool = False) -> bytes:
    """One metric of a training history (and its ``val_`` partner) against the epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    for key, style in ((metric, "-"), (f"val_{metric}", "--")):
        if key in history:
            values = history[key]
            ax.plot(np.arange(1, len(values) + 1), values, style, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


# ----------------------------------------------------------------------------- elastic deformation
def elastic_pair(image, labels, sigma, seed, grid=3):
    """Deformed image and labels as two pictures (uint8 grey, uint8 0/255)."""
    deformed_image, deformed_labels, _ = elastic_deform(image, labels, grid=grid, sigma=sigma, rng=seed)
    return to_grey_uint8(deformed_image), (np.asarray(deformed_labels) > 0).astype(np.uint8) * 255
