"""Live viewers of a U-Net's outputs for Jupyter and Colab (chapter 9), and the chapter's one import.

Each viewer is a class (e.g. :class:`StackBrowser`): ipywidgets controls whose
``observe`` callbacks recompute the views in the kernel. It takes arrays, so
it works on the predictions of any model you trained. Every viewer also has a
kernel-free twin for the static HTML book (``static_widgets.py``); the pictures
and scores of both come from ``views.py``, the chapters' artifacts from
``book.py``. All of them stay importable from here, as ``widgets.NAME``.

Conventions: ISBI labels are class indices, 0 = membrane, 1 = cell; a
prediction is the MEMBRANE probability (channel 0 of the U-Net's softmax); a
pixel is cell where ``P(membrane) < threshold`` (see ``views.py``).
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .book import book_artifact, load_predictions, read_history
from .static_widgets import (static_elastic_explorer, static_stack_browser, static_threshold_explorer,
                             static_training_curves, static_weight_map_explorer, titled)
from .views import (FALSE_MEMBRANE_RGB, MISSED_MEMBRANE_RGB, PANEL_PX, check_stack, check_threshold, check_triplet,
                    colormap_rgb, curve_png, elastic_pair, encode_image, error_masks, error_overlay, history_png,
                    membrane_to_labels, metric_groups, scores_html, slice_scores, threshold_curve, to_grey_uint8)
from .weights import instances_from_isbi, weight_map


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
        self.images, self.labels, self.membrane = check_triplet(images, labels, membrane)
        self.size = size
        n = self.images.shape[0]
        self.slice_slider = widgets.IntSlider(value=0, min=0, max=n - 1, description="slice")
        self.threshold_slider = widgets.FloatSlider(value=check_threshold(threshold), min=0.0, max=1.0, step=0.05,
                                                    description="threshold")
        self.opacity_slider = widgets.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.1, description="opacity")
        self.panels = {name: widgets.Image(format="png", width=PANEL_PX)
                       for name in ("image", "truth", "prediction", "errors")}
        self.scores = widgets.HTML()
        titles = {"image": "image", "truth": "ground truth", "prediction": "P(membrane)",
                  "errors": "errors: <span style='color:#ff2828'>false</span> / "
                            "<span style='color:#00b8d8'>missed</span> membrane"}
        panels = widgets.HBox([titled(titles[k], v) for k, v in self.panels.items()],
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
        self.scores.value = scores_html(slice_scores(predicted, self.labels[i]), f"slice {i}: ")

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
        labels = check_stack(labels, "labels")
        images = labels * 255 if images is None else images
        self.images, self.labels, self.membrane = check_triplet(images, labels, membrane)
        self.thresholds = thresholds
        self.size = size
        self._curves: dict[int, dict] = {}
        n = self.labels.shape[0]
        self.slice_slider = widgets.IntSlider(value=0, min=0, max=n - 1, description="slice")
        self.threshold_slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="threshold")
        self.binary = widgets.Image(format="png", width=PANEL_PX)
        self.errors = widgets.Image(format="png", width=PANEL_PX)
        self.curve = widgets.Image(format="png")
        self.scores = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.slice_slider, self.threshold_slider]), self.scores,
            widgets.HBox([titled("P(membrane) < threshold: cell (white)", self.binary),
                          titled("errors", self.errors), titled("error vs threshold", self.curve)],
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
        self.curve.value = curve_png(self.curve_of(i), t, f"slice {i}")
        self.scores.value = scores_html(slice_scores(predicted, self.labels[i]), f"threshold {t:.2f}: ")

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
        self.picture = widgets.Image(format="png", width=PANEL_PX * 2)
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
        self.image_panel = widgets.Image(format="png", width=PANEL_PX)
        self.labels_panel = widgets.Image(format="png", width=PANEL_PX)
        self.widget = widgets.VBox([widgets.HBox([self.sigma_slider, self.seed_slider]),
                                    widgets.HBox([titled("deformed image", self.image_panel),
                                                  titled("deformed labels", self.labels_panel)])])
        self.sigma_slider.observe(self._update, names="value")
        self.seed_slider.observe(self._update, names="value")
        self._update()

    def _update(self, change=None):
        image, labels = elastic_pair(self.image, self.labels, self.sigma_slider.value, self.seed_slider.value, self.grid)
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
        groups = metric_groups(self.history)
        self.metric = widgets.ToggleButtons(options=groups, value=groups[0], description="metric")
        self.log_scale = widgets.Checkbox(value=False, description="log scale")
        self.plot = widgets.Image(format="png")
        self.widget = widgets.VBox([widgets.HBox([self.metric, self.log_scale]), self.plot])
        self.metric.observe(self._update, names="value")
        self.log_scale.observe(self._update, names="value")
        self._update()

    def _update(self, change=None):
        self.plot.value = history_png(self.history, self.metric.value, self.log_scale.value)

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


__all__ = [
    "ElasticExplorer", "StackBrowser", "book_artifact", "ThresholdExplorer", "TrainingCurves", "WeightMapExplorer",
    "colormap_rgb", "encode_image", "error_masks", "error_overlay", "load_predictions", "membrane_to_labels",
    "read_history", "slice_scores", "static_elastic_explorer", "static_stack_browser", "static_threshold_explorer",
    "static_training_curves", "static_weight_map_explorer", "threshold_curve", "to_grey_uint8",
]
