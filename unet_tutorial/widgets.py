"""Interactive viewers for the outputs of a U-Net: live with a kernel, and static in the HTML book.

Chapter 9 of the book. Every viewer comes twice:

* a **live** viewer (a class, e.g. :class:`StackBrowser`): ipywidgets controls
  whose ``observe`` callbacks recompute the views, for Jupyter and Colab. It
  takes arrays, so it works on the predictions of any model you trained;
* a **static** viewer (a function, e.g. :func:`static_stack_browser`): the views
  for a small set of control values are computed once, stored as compressed
  images in ``ipywidgets.Stack`` containers, and the controls are tied to the
  stacks' ``selected_index`` with ``ipywidgets.jslink``. The link runs in the
  browser, so the rendered book (no kernel) still switches views when a
  slider moves. Keep the choices few: every view is embedded in the page.

Conventions (as in ``metrics.py``): ISBI labels are class indices, 0 =
membrane, 1 = cell; a prediction is the MEMBRANE probability (channel 0 of
the U-Net's softmax); a pixel is cell where ``P(membrane) < threshold``.
Error overlay colours: **false membrane** (predicted membrane where the truth
says cell) in red, **missed membrane** (truth membrane predicted as cell) in
cyan. A missed membrane can merge two cells, which the Rand error punishes far
more than the pixel error does (Ronneberger et al. 2015, Sec. 4, Table 1).
"""

from __future__ import annotations

import io
import json
import pathlib

import ipywidgets as widgets
import numpy as np

from . import metrics
from .augment import elastic_deform
from .weights import instances_from_isbi, weight_map

FALSE_MEMBRANE_RGB = (255, 40, 40)  # predicted membrane, truth cell
MISSED_MEMBRANE_RGB = (0, 220, 255)  # truth membrane, predicted cell
_PANEL_PX = 256  # display width of one panel in CSS pixels


# ----------------------------------------------------------------------------- input checks
def _check_stack(array, name: str, ndim: int = 3) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == ndim - 1:
        array = array[None]
    if array.ndim != ndim:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {array.shape}. "
                         "For a (N, H, W, 2) softmax output pass [..., 0], the membrane probability.")
    return array


def _check_triplet(images, labels, membrane):
    images = _check_stack(images, "images")
    labels = _check_stack(labels, "labels")
    membrane = _check_stack(membrane, "membrane")
    if not (images.shape == labels.shape == membrane.shape):
        raise ValueError(f"images {images.shape}, labels {labels.shape} and membrane {membrane.shape} "
                         "must have the same (N, H, W) shape: pass the slices that the predictions belong to.")
    metrics.check_isbi_labels(labels)
    membrane = metrics.check_probabilities(membrane.astype(np.float32))
    return images, labels.astype(np.uint8), membrane


def _check_threshold(threshold: float) -> float:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1] (a membrane probability), got {threshold}.")
    return float(threshold)


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
    threshold = _check_threshold(threshold)
    return (np.asarray(membrane) < threshold).astype(np.uint8)


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


def _image_widget(array, size=None, fmt="png", width=_PANEL_PX, quality: int = 65) -> widgets.Image:
    """An Image widget of ``array`` (static viewers: JPEG quality 65 keeps a page at a few MB)."""
    return widgets.Image(value=encode_image(array, size, fmt, quality), format=fmt, width=width)


def _titled(title: str, child) -> widgets.VBox:
    return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), child])


def _figure_png(fig) -> bytes:
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
    thresholds = [round(float(t), 4) for t in (np.arange(0.05, 1.0, 0.1) if thresholds is None else thresholds)]
    for t in thresholds:
        _check_threshold(t)
    scores = [slice_scores(membrane_to_labels(membrane, t), labels) for t in thresholds]
    return {"thresholds": thresholds,
            "pixel_error": [s["pixel_error"] for s in scores],
            "rand_error": [s["rand_error"] for s in scores]}


def _curve_png(curve: dict, current: float | None, title: str = "") -> bytes:
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
    return _figure_png(fig)


def _scores_html(scores: dict, prefix: str = "") -> str:
    return (f"{prefix}pixel error <b>{scores['pixel_error']:.3f}</b> · "
            f"Rand error <b>{scores['rand_error']:.3f}</b>")


# ----------------------------------------------------------------------------- training history
def read_history(history) -> dict[str, list[float]]:
    """A training history as ``{metric: [value per epoch]}``.

    Args:
        history: a path to a JSON file, or an already loaded object, in one of
            the layouts: Keras ``History.history`` (``{"loss": [...], ...}``),
            ``{"history": {...}}``, a list of per-epoch dicts
            (``[{"epoch": 0, "loss": ...}, ...]``), or ``{"epochs": [...]}`` of those.

    Returns:
        dict of metric name -> list of floats (``epoch`` keys dropped).
    """
    if isinstance(history, (str, pathlib.Path)):
        path = pathlib.Path(history)
        if not path.is_file():
            raise FileNotFoundError(f"history file {path} not found; train.py writes one per run (history.json).")
        history = json.loads(path.read_text())
    if isinstance(history, dict) and "history" in history and isinstance(history["history"], (dict, list)):
        history = history["history"]
    if isinstance(history, dict) and "epochs" in history and isinstance(history["epochs"], list):
        history = history["epochs"]
    if isinstance(history, list):
        if not all(isinstance(row, dict) for row in history):
            raise ValueError("a history list must hold one dict of metric values per epoch.")
        keys = [k for k in dict.fromkeys(k for row in history for k in row) if k != "epoch"]
        history = {k: [row.get(k, np.nan) for row in history] for k in keys}
    if not isinstance(history, dict) or not history:
        raise ValueError(f"cannot read a training history from a {type(history).__name__}; expected a dict of "
                         "metric lists (Keras History.history) or a list of per-epoch dicts.")
    out = {}
    for key, values in history.items():
        if key == "epoch" or not isinstance(values, (list, tuple)):
            continue
        try:
            out[key] = [float(v) if v is not None else float("nan") for v in values]
        except (TypeError, ValueError):
            continue  # non-numeric columns (timestamps, file names)
    if not out:
        raise ValueError(f"no numeric per-epoch metric found in the history (keys: {list(history)[:10]}).")
    return out


def _metric_groups(history: dict) -> list[str]:
    """Base metric names (``loss``, ``accuracy``...) with their ``val_`` partners grouped."""
    groups = [k for k in history if not k.startswith("val_")] or list(history)
    return sorted(groups, key=lambda k: (k != "loss", groups.index(k)))  # the loss first


def _history_png(history: dict, metric: str, log_scale: bool = False) -> bytes:
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
    return _figure_png(fig)


# ============================================================================= live viewers
class StackBrowser:
    """Live stack browser: slice slider, threshold, overlay opacity; image, truth, prediction, errors.

    Args:
        images: (N, H, W) grey slices (uint8 or float in [0, 1]).
        labels: (N, H, W) ISBI class labels (0 membrane, 1 cell).
        membrane: (N, H, W) membrane probability of any model (channel 0 of the softmax).
        threshold: initial threshold (cell where P(membrane) < threshold).
        size: longest side of the displayed pictures in pixels (downscaled for speed).

    Attributes:
        slice_slider, threshold_slider, opacity_slider: the controls.
        panels: dict of the four ``Image`` widgets (``image``, ``truth``,
            ``prediction``, ``errors``); ``scores``: an ``HTML`` line with the
            slice's pixel and Rand error. ``widget``: the whole viewer to display.
    """

    def __init__(self, images, labels, membrane, threshold: float = 0.5, size: int = 384):
        self.images, self.labels, self.membrane = _check_triplet(images, labels, membrane)
        self.size = size
        n = self.images.shape[0]
        self.slice_slider = widgets.IntSlider(value=0, min=0, max=n - 1, description="slice")
        self.threshold_slider = widgets.FloatSlider(value=_check_threshold(threshold), min=0.0, max=1.0, step=0.05,
                                                    description="threshold")
        self.opacity_slider = widgets.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.1, description="opacity")
        self.panels = {name: widgets.Image(format="png", width=_PANEL_PX)
                       for name in ("image", "truth", "prediction", "errors")}
        self.scores = widgets.HTML()
        titles = {"image": "image", "truth": "ground truth", "prediction": "P(membrane)",
                  "errors": "errors: <span style='color:#ff2828'>false</span> / "
                            "<span style='color:#00b8d8'>missed</span> membrane"}
        panels = widgets.HBox([_titled(titles[k], v) for k, v in self.panels.items()],
                              layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([widgets.HBox([self.slice_slider, self.threshold_slider, self.opacity_slider],
                                                 layout=widgets.Layout(flex_flow="row wrap")),
                                    self.scores, panels])
        self.slice_slider.observe(self._on_slice, names="value")
        self.threshold_slider.observe(self._on_overlay, names="value")
        self.opacity_slider.observe(self._on_overlay, names="value")
        self._on_slice()

    def _on_slice(self, change=None):
        i = self.slice_slider.value
        self.panels["image"].value = encode_image(self.images[i], self.size)
        self.panels["truth"].value = encode_image(self.labels[i].astype(bool), self.size)
        self.panels["prediction"].value = encode_image(self.membrane[i], self.size)
        self._on_overlay()

    def _on_overlay(self, change=None):
        i = self.slice_slider.value
        predicted = membrane_to_labels(self.membrane[i], self.threshold_slider.value)
        overlay = error_overlay(self.images[i], predicted, self.labels[i], self.opacity_slider.value)
        self.panels["errors"].value = encode_image(overlay, self.size)
        self.scores.value = _scores_html(slice_scores(predicted, self.labels[i]), f"slice {i}: ")

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


class ThresholdExplorer:
    """Live threshold explorer: the binary map and the error curve with the current threshold marked.

    Args:
        membrane: (H, W) or (N, H, W) membrane probability; labels: ISBI labels.
        images: optional grey slices for the error overlay (default: the labels).
        thresholds: the thresholds of the curve (default ten, 0.05 ... 0.95).
        size: longest side of the displayed pictures.

    Attributes: ``slice_slider``, ``threshold_slider``, ``binary`` (Image),
    ``errors`` (Image), ``curve`` (Image), ``scores`` (HTML), ``widget``.
    """

    def __init__(self, membrane, labels, images=None, thresholds=None, size: int = 384):
        labels = _check_stack(labels, "labels")
        images = labels * 255 if images is None else images
        self.images, self.labels, self.membrane = _check_triplet(images, labels, membrane)
        self.thresholds = thresholds
        self.size = size
        self._curves: dict[int, dict] = {}
        n = self.labels.shape[0]
        self.slice_slider = widgets.IntSlider(value=0, min=0, max=n - 1, description="slice")
        self.threshold_slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="threshold")
        self.binary = widgets.Image(format="png", width=_PANEL_PX)
        self.errors = widgets.Image(format="png", width=_PANEL_PX)
        self.curve = widgets.Image(format="png")
        self.scores = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.slice_slider, self.threshold_slider]), self.scores,
            widgets.HBox([_titled("P(membrane) < threshold: cell (white)", self.binary),
                          _titled("errors", self.errors), _titled("error vs threshold", self.curve)],
                         layout=widgets.Layout(flex_flow="row wrap"))])
        self.slice_slider.observe(self._update, names="value")
        self.threshold_slider.observe(self._update, names="value")
        self._update()

    def curve_of(self, i: int) -> dict:
        """The threshold curve of slice ``i`` (computed once, then cached)."""
        if i not in self._curves:
            self._curves[i] = threshold_curve(self.membrane[i], self.labels[i], self.thresholds)
        return self._curves[i]

    def _update(self, change=None):
        i, t = self.slice_slider.value, self.threshold_slider.value
        predicted = membrane_to_labels(self.membrane[i], t)
        self.binary.value = encode_image(predicted.astype(bool), self.size)
        self.errors.value = encode_image(error_overlay(self.images[i], predicted, self.labels[i]), self.size)
        self.curve.value = _curve_png(self.curve_of(i), t, f"slice {i}")
        self.scores.value = _scores_html(slice_scores(predicted, self.labels[i]), f"threshold {t:.2f}: ")

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


class WeightMapExplorer:
    """Live explorer of the loss weight map (Ronneberger et al. 2015, Sec. 3, Eq. 2).

    Args:
        labels: (H, W) ISBI class labels (cells become instances with
            ``weights.instances_from_isbi``) or, with ``instances=True``, (H, W)
            instance labels (0 background, 1..n cells).
        w0, sigma: initial values (paper: 10 and about 5 pixels).
        vmax: top of the colour scale (fixed, so that maps for different
            settings can be compared by eye); default ``1 + 2 * max w0`` of the slider.

    Attributes: ``w0_slider``, ``sigma_slider``, ``picture`` (Image), ``info`` (HTML), ``widget``.
    """

    def __init__(self, labels, w0: float = 10.0, sigma: float = 5.0, instances: bool = False, vmax=None, size=384):
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise ValueError(f"labels must be one (H, W) slice, got shape {labels.shape}.")
        self.instances = labels.astype(np.int32) if instances else instances_from_isbi(labels)
        self.size = size
        self.w0_slider = widgets.FloatSlider(value=w0, min=0.0, max=30.0, step=1.0, description="w0")
        self.sigma_slider = widgets.FloatSlider(value=sigma, min=1.0, max=15.0, step=0.5, description="σ (px)")
        self.vmax = vmax
        self.picture = widgets.Image(format="png", width=_PANEL_PX * 2)
        self.info = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.w0_slider, self.sigma_slider]), self.info, self.picture])
        self.w0_slider.observe(self._update, names="value")
        self.sigma_slider.observe(self._update, names="value")
        self._update()

    def _update(self, change=None):
        weights = weight_map(self.instances, w0=self.w0_slider.value, sigma=self.sigma_slider.value)
        vmax = self.vmax if self.vmax is not None else 1.0 + 2.0 * self.w0_slider.max
        self.picture.value = encode_image(colormap_rgb(weights, 0.0, vmax, "magma"), self.size)
        self.info.value = f"weight: min <b>{weights.min():.2f}</b>, max <b>{weights.max():.2f}</b> (colour scale 0 … {vmax:g})"

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


def _elastic_pair(image, labels, sigma, seed, grid=3):
    """Deformed image and labels as two pictures (uint8 grey, uint8 0/255)."""
    deformed_image, deformed_labels, _ = elastic_deform(image, labels, grid=grid, sigma=sigma, rng=seed)
    return to_grey_uint8(deformed_image), (np.asarray(deformed_labels) > 0).astype(np.uint8) * 255


class ElasticExplorer:
    """Live explorer of the elastic deformation (Ronneberger et al. 2015, Sec. 3.1).

    Args:
        image: (H, W) grey image; labels: (H, W) class labels deformed with it.
        sigma: initial displacement standard deviation in pixels (paper: 10).
        seed: initial random seed (the same seed gives the same deformation).
        grid: coarse lattice size (paper: 3).

    Attributes: ``sigma_slider``, ``seed_slider``, ``image_panel``, ``labels_panel``, ``widget``.
    """

    def __init__(self, image, labels, sigma: float = 10.0, seed: int = 0, grid: int = 3, size: int = 384):
        self.image, self.labels = np.asarray(image), np.asarray(labels)
        if self.image.shape[:2] != self.labels.shape:
            raise ValueError(f"image {self.image.shape} and labels {self.labels.shape} must cover the same pixels.")
        self.grid, self.size = grid, size
        self.sigma_slider = widgets.FloatSlider(value=sigma, min=0.0, max=30.0, step=1.0, description="σ (px)")
        self.seed_slider = widgets.IntSlider(value=seed, min=0, max=20, description="seed")
        self.image_panel = widgets.Image(format="png", width=_PANEL_PX)
        self.labels_panel = widgets.Image(format="png", width=_PANEL_PX)
        self.widget = widgets.VBox([widgets.HBox([self.sigma_slider, self.seed_slider]),
                                    widgets.HBox([_titled("deformed image", self.image_panel),
                                                  _titled("deformed labels", self.labels_panel)])])
        self.sigma_slider.observe(self._update, names="value")
        self.seed_slider.observe(self._update, names="value")
        self._update()

    def _update(self, change=None):
        image, labels = _elastic_pair(self.image, self.labels, self.sigma_slider.value, self.seed_slider.value, self.grid)
        self.image_panel.value = encode_image(image, self.size)
        self.labels_panel.value = encode_image(labels, self.size)

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


class TrainingCurves:
    """Live training-curve viewer for a history (see :func:`read_history`).

    Attributes: ``metric`` (ToggleButtons), ``log_scale`` (Checkbox), ``plot`` (Image), ``widget``.
    """

    def __init__(self, history):
        self.history = read_history(history)
        groups = _metric_groups(self.history)
        self.metric = widgets.ToggleButtons(options=groups, value=groups[0], description="metric")
        self.log_scale = widgets.Checkbox(value=False, description="log scale")
        self.plot = widgets.Image(format="png")
        self.widget = widgets.VBox([widgets.HBox([self.metric, self.log_scale]), self.plot])
        self.metric.observe(self._update, names="value")
        self.log_scale.observe(self._update, names="value")
        self._update()

    def _update(self, change=None):
        self.plot.value = _history_png(self.history, self.metric.value, self.log_scale.value)

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


# ============================================================================= static viewers
def _linked_stack(children, control, trait: str = "index") -> widgets.Stack:
    """A Stack of ``children`` whose visible child follows ``control.<trait>`` in the browser (jslink)."""
    stack = widgets.Stack(children=list(children), selected_index=0)
    widgets.jslink((control, trait), (stack, "selected_index"))
    return stack


def _grid_stack(grid, outer, inner, outer_trait="index", inner_trait="index") -> widgets.Stack:
    """Views for two controls: ``grid[i][j]`` is shown when outer is at i and inner at j."""
    rows = [_linked_stack(row, inner, inner_trait) for row in grid]
    return _linked_stack(rows, outer, outer_trait)


def _choose_slices(n: int, max_slices: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int).tolist()))


def static_stack_browser(images, labels, membrane, threshold: float = 0.5, slice_numbers=None, max_slices: int = 8,
                         opacities=(0.0, 0.5, 1.0), size: int = 224) -> widgets.VBox:
    """Kernel-free stack browser: a slice slider and an opacity slider over precomputed pictures.

    Args:
        images, labels, membrane: (N, H, W) as for :class:`StackBrowser`.
        threshold: the fixed threshold of the prediction.
        slice_numbers: numbers to show on the slider for the N slices (e.g. their
            indices in the full stack); default 0..N-1.
        max_slices: at most this many slices, evenly spaced, are embedded.
        opacities: the choices of the overlay opacity slider.
        size: longest side of each embedded picture (JPEG for grey images and
            overlays, PNG for label maps).

    Returns:
        ``VBox`` whose children are the controls (``IntSlider`` slice position,
        ``SelectionSlider`` opacity), a score line and the panels, each a
        ``Stack`` linked in the browser with ``jslink``.
    """
    images, labels, membrane = _check_triplet(images, labels, membrane)
    chosen = _choose_slices(images.shape[0], max_slices)
    numbers = list(range(images.shape[0])) if slice_numbers is None else [int(s) for s in slice_numbers]
    position = widgets.SelectionSlider(options=[str(numbers[i]) for i in chosen], value=str(numbers[chosen[0]]),
                                       description="slice")
    opacity = widgets.SelectionSlider(options=[f"{o:.1f}" for o in opacities], value=f"{opacities[-1]:.1f}",
                                      description="opacity")
    panels = {"image": [], "truth": [], "prediction": [], "errors": [], "scores": []}
    for i in chosen:
        predicted = membrane_to_labels(membrane[i], threshold)
        panels["image"].append(_image_widget(images[i], size, "jpeg"))
        panels["truth"].append(_image_widget(labels[i].astype(bool), size, "png"))
        panels["prediction"].append(_image_widget(membrane[i], size, "jpeg"))
        panels["errors"].append([_image_widget(error_overlay(images[i], predicted, labels[i], o), size, "jpeg")
                                 for o in opacities])
        panels["scores"].append(widgets.HTML(_scores_html(slice_scores(predicted, labels[i]),
                                                          f"slice {numbers[i]}, threshold {threshold:.2f}: ")))
    titles = {"image": "image", "truth": "ground truth", "prediction": "P(membrane)",
              "errors": "errors: <span style='color:#ff2828'>false</span> / "
                        "<span style='color:#00b8d8'>missed</span> membrane"}
    boxes = [_titled(titles[k], _linked_stack(panels[k], position, "index")) for k in ("image", "truth", "prediction")]
    boxes.append(_titled(titles["errors"], _grid_stack(panels["errors"], position, opacity)))
    rows = [widgets.HBox(boxes[:2]), widgets.HBox(boxes[2:])]  # 2 x 2 panels fit the book's text column
    # The score Stack sits in an inner VBox: as a direct child of the outer VBox, next to the sliders, it
    # failed to render in html-manager 1.0.15 ("Could not create a view"); wrapped, it renders.
    return widgets.VBox([widgets.HBox([position, opacity], layout=widgets.Layout(flex_flow="row wrap")),
                         widgets.VBox([_linked_stack(panels["scores"], position, "index"),
                                       *rows])])


def static_threshold_explorer(membrane, labels, images=None, thresholds=None, title: str = "",
                              size: int = 224) -> widgets.VBox:
    """Kernel-free threshold explorer for one slice (or a whole stack, scored together).

    Args:
        membrane: (H, W) membrane probability, or (N, H, W): the first slice is
            shown, the curve and scores cover all N slices.
        labels: ISBI labels of the same shape; images: optional grey image(s).
        thresholds: the choices of the threshold slider (default ten, 0.05 ... 0.95).
        title: caption of the curve.

    Returns:
        ``VBox``: a ``SelectionSlider`` of thresholds linked (jslink on its
        index) to a ``Stack`` of (score line, binary map, error overlay, curve
        with the current point marked) views.
    """
    labels = _check_stack(labels, "labels")
    images, labels, membrane = _check_triplet(labels * 255 if images is None else images, labels, membrane)
    curve = threshold_curve(membrane, labels, thresholds)
    control = widgets.SelectionSlider(options=[f"{t:.2f}" for t in curve["thresholds"]],
                                      value=f"{curve['thresholds'][len(curve['thresholds']) // 2]:.2f}",
                                      description="threshold")
    views = []
    for k, t in enumerate(curve["thresholds"]):
        predicted = membrane_to_labels(membrane[0], t)
        scores = {"pixel_error": curve["pixel_error"][k], "rand_error": curve["rand_error"][k]}
        views.append(widgets.VBox([
            widgets.HTML(_scores_html(scores, f"threshold {t:.2f}: ")),
            widgets.HBox([_titled("cell (white) where P(membrane) &lt; threshold",
                                  _image_widget(predicted.astype(bool), size, "png")),
                          _titled("errors", _image_widget(error_overlay(images[0], predicted, labels[0]), size, "jpeg")),
                          _titled("error vs threshold", widgets.Image(value=_curve_png(curve, t, title), format="png"))],
                         layout=widgets.Layout(flex_flow="row wrap"))]))
    return widgets.VBox([control, _linked_stack(views, control, "index")])


def static_weight_map_explorer(labels, w0_values=(0.0, 5.0, 10.0, 20.0), sigma_values=(2.0, 5.0, 10.0),
                               instances: bool = False, size: int = 224) -> widgets.VBox:
    """Kernel-free weight-map explorer: w0 and sigma sliders over precomputed maps (same colour scale)."""
    labels = np.asarray(labels)
    cells = labels.astype(np.int32) if instances else instances_from_isbi(labels)
    vmax = 1.0 + 2.0 * max(w0_values)
    w0 = widgets.SelectionSlider(options=[f"{v:g}" for v in w0_values], value=f"{w0_values[min(2, len(w0_values) - 1)]:g}",
                                 description="w0")
    sigma = widgets.SelectionSlider(options=[f"{v:g}" for v in sigma_values],
                                    value=f"{sigma_values[min(1, len(sigma_values) - 1)]:g}", description="σ (px)")
    grid = []
    for a in w0_values:
        row = []
        for s in sigma_values:
            weights = weight_map(cells, w0=a, sigma=s)
            row.append(widgets.VBox([
                widgets.HTML(f"w0={a:g}, σ={s:g}: weight max <b>{weights.max():.2f}</b> (colour scale 0 … {vmax:g})"),
                _image_widget(colormap_rgb(weights, 0.0, vmax, "magma"), size, "png", width=2 * _PANEL_PX)]))
        grid.append(row)
    return widgets.VBox([widgets.HBox([w0, sigma]), _grid_stack(grid, w0, sigma)])


def static_elastic_explorer(image, labels, sigma_values=(0.0, 5.0, 10.0, 20.0), seeds=(0, 1, 2), grid: int = 3,
                            size: int = 224) -> widgets.VBox:
    """Kernel-free elastic-deformation explorer: displacement strength and seed sliders."""
    sigma = widgets.SelectionSlider(options=[f"{v:g}" for v in sigma_values],
                                    value=f"{sigma_values[min(2, len(sigma_values) - 1)]:g}", description="σ (px)")
    seed = widgets.SelectionSlider(options=[str(s) for s in seeds], value=str(seeds[0]), description="seed")
    views = []
    for s in sigma_values:
        row = []
        for r in seeds:
            deformed_image, deformed_labels = _elastic_pair(image, labels, s, r, grid)
            row.append(widgets.HBox([_titled("deformed image", _image_widget(deformed_image, size, "jpeg")),
                                     _titled("deformed labels", _image_widget(deformed_labels, size, "png"))]))
        views.append(row)
    return widgets.VBox([widgets.HBox([sigma, seed]), _grid_stack(views, sigma, seed)])


def static_training_curves(history) -> widgets.VBox:
    """Kernel-free training-curve viewer: metric buttons (training and validation) and a log-scale toggle."""
    history = read_history(history)
    groups = _metric_groups(history)
    metric = widgets.ToggleButtons(options=groups, value=groups[0], description="metric")
    scale = widgets.ToggleButtons(options=["linear", "log"], value="linear", description="y axis")
    grid = [[widgets.Image(value=_history_png(history, g, log), format="png") for log in (False, True)] for g in groups]
    return widgets.VBox([widgets.HBox([metric, scale]), _grid_stack(grid, metric, scale)])


def book_artifact(name: str, folder="../artifacts/chapter9",
                  base_url: str = "https://raw.githubusercontent.com/unet-tutorial/unet-tutorial/main/book/artifacts/chapter9"):
    """Path of one of chapter 9's committed artifacts: the local copy, else a download (e.g. on Colab).

    Args:
        name: file name, e.g. ``"isbi_heldout_membrane.npz"``.
        folder: where the file lies in a checkout, relative to the chapter (``book/ko`` or ``book/en``).
        base_url: the same folder in the repository, used when there is no local copy.
    """
    path = pathlib.Path(folder) / name
    if path.is_file():
        return path
    import pooch

    return pathlib.Path(pooch.retrieve(f"{base_url}/{name}", known_hash=None, fname=name, progressbar=False,
                                       path=pooch.os_cache("unet-tutorial") / "artifacts" / "chapter9"))


def load_predictions(path) -> tuple[np.ndarray, np.ndarray]:
    """Membrane probabilities saved as uint8 in an ``.npz`` (keys ``membrane``, ``slices``).

    Returns:
        (membrane (N, H, W) float32 in [0, 1], slices (N,) int: the slice indices in the stack).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file {path} not found (book/artifacts/chapter9/ holds the book's own).")
    with np.load(path) as data:
        if "membrane" not in data:
            raise ValueError(f"{path} has arrays {list(data)}; expected 'membrane' (N, H, W) and 'slices' (N,).")
        membrane = data["membrane"]
        slices = data["slices"] if "slices" in data else np.arange(membrane.shape[0])
    if membrane.dtype == np.uint8:
        membrane = membrane.astype(np.float32) / 255.0
    return membrane.astype(np.float32), slices.astype(int)


__all__ = [
    "ElasticExplorer", "StackBrowser", "book_artifact", "ThresholdExplorer", "TrainingCurves", "WeightMapExplorer",
    "colormap_rgb", "encode_image", "error_masks", "error_overlay", "load_predictions", "membrane_to_labels",
    "read_history", "slice_scores", "static_elastic_explorer", "static_stack_browser", "static_threshold_explorer",
    "static_training_curves", "static_weight_map_explorer", "threshold_curve", "to_grey_uint8",
]
