"""Viewers that work in the static HTML book, with no kernel (chapter 9).

The views for a small set of control values are computed once, stored as
compressed images in ``ipywidgets.Stack`` containers, and the controls are tied
to the stacks' ``selected_index`` with ``ipywidgets.jslink``. The link runs in
the browser, so the rendered book still switches views when a slider moves.
Keep the choices few: every view is embedded in the page. The live versions,
which recompute each view in a kernel, are in ``widgets.py``; both draw their
pictures with ``views.py``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .book import read_history
from .views import (PANEL_PX, check_stack, check_triplet, colormap_rgb, curve_png, elastic_pair, encode_image,
                    error_overlay, history_png, membrane_to_labels, metric_groups, scores_html, slice_scores,
                    threshold_curve)
from .weights import instances_from_isbi, weight_map

__all__ = ["static_elastic_explorer", "static_stack_browser", "static_threshold_explorer", "static_training_curves",
           "static_weight_map_explorer", "titled"]


def titled(title: str, child) -> widgets.VBox:
    """A panel with a bold title above it (the live viewers use it too).

    The title wraps within one panel's width and panels keep a gap between
    them, so that the titles of panels side by side never run together.
    """
    heading = widgets.HTML(f'<div style="white-space: normal; line-height: 1.3; max-width: {PANEL_PX}px"><b>{title}</b></div>')
    return widgets.VBox([heading, child], layout=widgets.Layout(margin="0 16px 8px 0"))


def _image_widget(array, size=None, fmt="png", width=PANEL_PX, quality: int = 65) -> widgets.Image:
    """An Image widget of ``array`` (JPEG quality 65 keeps a page at a few MB)."""
    return widgets.Image(value=encode_image(array, size, fmt, quality), format=fmt, width=width)


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
    images, labels, membrane = check_triplet(images, labels, membrane)
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
        panels["scores"].append(widgets.HTML(scores_html(slice_scores(predicted, labels[i]),
                                                          f"slice {numbers[i]}, threshold {threshold:.2f}: ")))
    titles = {"image": "image", "truth": "ground truth", "prediction": "P(membrane)",
              "errors": "errors: <span style='color:#ff2828'>false</span> / "
                        "<span style='color:#00b8d8'>missed</span> membrane"}
    boxes = [titled(titles[k], _linked_stack(panels[k], position, "index")) for k in ("image", "truth", "prediction")]
    boxes.append(titled(titles["errors"], _grid_stack(panels["errors"], position, opacity)))
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
    labels = check_stack(labels, "labels")
    images, labels, membrane = check_triplet(labels * 255 if images is None else images, labels, membrane)
    curve = threshold_curve(membrane, labels, thresholds)
    control = widgets.SelectionSlider(options=[f"{t:.2f}" for t in curve["thresholds"]],
                                      value=f"{curve['thresholds'][len(curve['thresholds']) // 2]:.2f}",
                                      description="threshold")
    views = []
    for k, t in enumerate(curve["thresholds"]):
        predicted = membrane_to_labels(membrane[0], t)
        scores = {"pixel_error": curve["pixel_error"][k], "rand_error": curve["rand_error"][k]}
        views.append(widgets.VBox([
            widgets.HTML(scores_html(scores, f"threshold {t:.2f}: ")),
            widgets.HBox([titled("cell (white) where P(membrane) &lt; threshold",
                                  _image_widget(predicted.astype(bool), size, "png")),
                          titled("errors", _image_widget(error_overlay(images[0], predicted, labels[0]), size, "jpeg")),
                          titled("error vs threshold", widgets.Image(value=curve_png(curve, t, title), format="png"))],
                         layout=widgets.Layout(flex_flow="row wrap"))]))
    return widgets.VBox([control, _linked_stack(views, control, "index")])


def static_weight_map_explorer(labels, w0_values=(0.0, 5.0, 10.0, 20.0), sigma_values=(2.0, 5.0, 10.0),
                               instances: bool = False, size: int = 224) -> widgets.VBox:
    """Kernel-free weight-map explorer: w0 and sigma sliders over precomputed maps.

    All maps share one colour scale, from 0 to the largest weight of any of
    them, so that the maps can be compared and none is dark for a scale set
    far above its values.
    """
    labels = np.asarray(labels)
    cells = labels.astype(np.int32) if instances else instances_from_isbi(labels)
    maps = {(a, s): weight_map(cells, w0=a, sigma=s) for a in w0_values for s in sigma_values}
    vmax = max(float(m.max()) for m in maps.values())
    w0 = widgets.SelectionSlider(options=[f"{v:g}" for v in w0_values], value=f"{w0_values[min(2, len(w0_values) - 1)]:g}",
                                 description="w0")
    sigma = widgets.SelectionSlider(options=[f"{v:g}" for v in sigma_values],
                                    value=f"{sigma_values[min(1, len(sigma_values) - 1)]:g}", description="σ (px)")
    grid = []
    for a in w0_values:
        row = []
        for s in sigma_values:
            weights = maps[a, s]
            row.append(widgets.VBox([
                widgets.HTML(f"w0={a:g}, σ={s:g}: weight max <b>{weights.max():.2f}</b> (colour scale 0 … {vmax:.1f})"),
                _image_widget(colormap_rgb(weights, 0.0, vmax, "magma"), size, "png", width=2 * PANEL_PX)]))
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
            deformed_image, deformed_labels = elastic_pair(image, labels, s, r, grid)
            row.append(widgets.HBox([titled("deformed image", _image_widget(deformed_image, size, "jpeg")),
                                     titled("deformed labels", _image_widget(deformed_labels, size, "png"))]))
        views.append(row)
    return widgets.VBox([widgets.HBox([sigma, seed]), _grid_stack(views, sigma, seed)])


def static_training_curves(history) -> widgets.VBox:
    """Kernel-free training-curve viewer: metric buttons (training and validation) and a log-scale toggle."""
    history = read_history(history)
    groups = metric_groups(history)
    metric = widgets.ToggleButtons(options=groups, value=groups[0], description="metric")
    scale = widgets.ToggleButtons(options=["linear", "log"], value="linear", description="y axis")
    grid = [[widgets.Image(value=history_png(history, g, log), format="png") for log in (False, True)] for g in groups]
    return widgets.VBox([widgets.HBox([metric, scale]), _grid_stack(grid, metric, scale)])
