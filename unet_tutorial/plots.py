"""Figures for the book: label maps, one-hot masks, EM slices, and the U-Net diagram.

Every function returns a ``matplotlib.figure.Figure`` and draws nothing that
is not computed from its arguments: the architecture diagram reads the layer
shapes of the model it is given, so it is always the network in the code, not
a copied picture of the paper's Fig. 1 (Ronneberger et al. 2015).

Hangul in figures needs a font that has Hangul glyphs. ``setup_korean_font()``
is the one place that chooses it; call it once before plotting.
"""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.colors import ListedColormap
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

# Fonts with Hangul glyphs, best first: NanumGothic comes with koreanize-matplotlib
# (pip, works on Colab) and with Debian's fonts-nanum package.
_KOREAN_FONTS = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic", "AppleGothic")

# Colours of the lecture's six street classes (0..5), reused for any label map.
_CLASS_COLOURS = ("#3b3b3b", "#e6194b", "#f58231", "#3cb44b", "#bfbfbf", "#4363d8", "#911eb4", "#42d4f4")


def setup_korean_font() -> str:
    """Make matplotlib draw Hangul; return the name of the font family it uses.

    Tries ``koreanize_matplotlib`` first (it bundles NanumGothic, so it works
    offline and on Colab after ``pip install``), then any installed font from
    a short list (e.g. Debian's ``fonts-nanum``). Also sets
    ``axes.unicode_minus = False``: NanumGothic has no U+2212 MINUS SIGN, so
    negative tick labels use the ASCII hyphen-minus. Some NanumGothic builds
    also lack the radical sign, so figure text writes "sqrt" instead.

    Raises:
        RuntimeError: if no font with Hangul glyphs can be found, with the
            commands that install one.
    """
    family = None
    try:
        with warnings.catch_warnings():
            # koreanize-matplotlib 0.1.1 imports distutils' LooseVersion, which warns.
            warnings.simplefilter("ignore", DeprecationWarning)
            import koreanize_matplotlib  # noqa: F401  (registers NanumGothic and selects it)
        family = "NanumGothic"
    except ImportError:
        installed = {entry.name for entry in font_manager.fontManager.ttflist}
        family = next((name for name in _KOREAN_FONTS if name in installed), None)
    if family is None:
        raise RuntimeError(
            "No font with Hangul glyphs found for matplotlib. Install one with "
            "`pip install koreanize-matplotlib` (works everywhere, also on Colab) or "
            "`apt-get install fonts-nanum`, then restart the Python kernel."
        )
    matplotlib.rcParams["font.family"] = [family]
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family


def font_has_glyphs(text: str, family: str | None = None) -> list[str]:
    """Characters of ``text`` (spaces aside) that the font ``family`` cannot draw.

    ``family`` defaults to the first family in ``rcParams["font.family"]``.
    An empty list means every character has a glyph.
    """
    from matplotlib.ft2font import FT2Font

    family = family or matplotlib.rcParams["font.family"][0]
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    charmap = FT2Font(path).get_charmap()
    return sorted({ch for ch in text if not ch.isspace() and ord(ch) not in charmap})


def label_colormap(n_classes: int) -> ListedColormap:
    """A colour map with one fixed colour per class index 0..n_classes-1."""
    if not 1 <= n_classes <= len(_CLASS_COLOURS):
        raise ValueError(f"label_colormap supports 1..{len(_CLASS_COLOURS)} classes, got {n_classes}.")
    return ListedColormap(_CLASS_COLOURS[:n_classes])


def plot_segmentation(image, labels, class_names, title_image="image", title_labels="labels"):
    """An image beside its label map, with a legend of the class names.

    Args:
        image: (H, W) or (H, W, 3) array.
        labels: (H, W) integer class indices in [0, len(class_names)).
        class_names: one name per class index.
    Returns:
        The figure (two panels).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a (H, W) map of class indices, got shape {labels.shape}.")
    n_classes = len(class_names)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    left.imshow(image, cmap="gray")
    left.set_title(title_image)
    right.imshow(labels, cmap=label_colormap(n_classes), vmin=-0.5, vmax=n_classes - 0.5, interpolation="nearest")
    right.set_title(title_labels)
    for ax in (left, right):
        ax.set_axis_off()
    handles = [Patch(color=_CLASS_COLOURS[k], label=f"{k}: {name}") for k, name in enumerate(class_names)]
    right.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig


def plot_channels(channels, class_names, cmap="viridis", vmin=0.0, vmax=1.0):
    """One panel per channel of a (H, W, C) array (a one-hot mask or class scores)."""
    channels = np.asarray(channels)
    if channels.ndim != 3 or channels.shape[-1] != len(class_names):
        raise ValueError(
            f"channels must have shape (H, W, {len(class_names)}) (one channel per class name), "
            f"got {channels.shape}."
        )
    n = channels.shape[-1]
    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 2.4), constrained_layout=True)
    for k, ax in enumerate(np.atleast_1d(axes)):
        image = ax.imshow(channels[..., k], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{k}: {class_names[k]}", fontsize=9)
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def plot_slice(image, labels=None, titles=("image", "labels", "overlay"), crop=None):
    """An EM slice, its labels and the labels laid over the image.

    Args:
        image: (H, W) grey image.
        labels: (H, W) class indices (ISBI: 0 = membrane, 1 = cell), or None.
        titles: panel titles.
        crop: optional (row_slice, col_slice) to zoom into.
    """
    image = np.asarray(image)
    if crop is not None:
        image = image[crop]
        labels = None if labels is None else np.asarray(labels)[crop]
    n = 1 if labels is None else 3
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6), constrained_layout=True)
    axes = np.atleast_1d(axes)
    axes[0].imshow(image, cmap="gray", interpolation="nearest")
    if labels is not None:
        axes[1].imshow(labels, cmap="gray", interpolation="nearest", vmin=0, vmax=1)
        axes[2].imshow(image, cmap="gray", interpolation="nearest")
        membrane = np.ma.masked_where(np.asarray(labels) != 0, np.ones_like(labels))
        axes[2].imshow(membrane, cmap=ListedColormap(["#ff3030"]), alpha=0.45, interpolation="nearest")
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_axis_off()
    return fig


# ---------------------------------------------------------------------------
# The architecture diagram, read from a model's layers.


def unet_feature_maps(model) -> list[dict]:
    """Walk a U-Net's layers and list the feature maps the paper's Fig. 1 draws.

    Works for ``unet_tutorial.build_unet`` and for any functional U-Net made
    of ``Conv2D`` / ``MaxPooling2D`` / ``Conv2DTranspose`` and a concatenation
    layer. The level goes down by one at every pooling and up at every
    up-convolution.

    Returns:
        One dict per feature map, in layer order: ``name``, ``kind`` ("input",
        "conv", "upconv", "concat", "output"), ``level`` (0 = top), ``size``
        (height), ``width``, ``channels``.
    """
    import keras

    maps, level = [], 0
    for layer in model.layers:
        shape = tuple(layer.output.shape)
        if isinstance(layer, keras.layers.InputLayer):
            kind = "input"
        elif isinstance(layer, keras.layers.MaxPooling2D):
            level += 1
            continue
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            level -= 1
            kind = "upconv"
        elif isinstance(layer, keras.layers.Conv2D):
            kind = "output" if tuple(layer.kernel_size) == (1, 1) else "conv"
        elif "concat" in type(layer).__name__.lower():
            kind = "concat"
        else:
            continue
        if len(shape) != 4:
            raise ValueError(f"Layer {layer.name!r} has output shape {shape}; expected (B, H, W, C).")
        maps.append(
            {"name": layer.name, "kind": kind, "level": level, "size": shape[1], "width": shape[2], "channels": shape[3]}
        )
    if not maps or level != 0:
        raise ValueError(
            f"{model.name!r} does not look like a U-Net: after all layers the level is {level} "
            "(every MaxPooling2D needs a matching Conv2DTranspose)."
        )
    return maps


_ARROWS = {  # colour and legend text of each arrow type (as in the paper's Fig. 1)
    "conv": ("#1f5fbf", "conv 3x3, ReLU (3x3 합성곱)"),
    "skip": ("#8c8c8c", "copy and crop (복사 후 자르기)"),
    "pool": ("#d62728", "max pool 2x2 (최대 풀링)"),
    "upconv": ("#2ca02c", "up-conv 2x2 (업-합성곱)"),
    "output": ("#17becf", "conv 1x1 (1x1 합성곱)"),
}


def plot_unet_architecture(model, figsize=(11, 6)):
    """Draw the U of a U-Net from its own layer shapes, in the style of the paper's Fig. 1.

    Each box is a feature map: its width grows with the number of channels
    (written above it), its height with the spatial size (written below it;
    one number for a square map).
    White boxes are the cropped copies from the contracting path.
    """
    maps = unet_feature_maps(model)
    max_channels = max(m["channels"] for m in maps)
    max_size = max(m["size"] or 1 for m in maps)
    depth = max(m["level"] for m in maps)

    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    x, previous, last_at_level = 0.0, None, {}
    up_arrow_x = upconv_end = 0.0
    gap, level_height = 0.7, 1.8

    def box_width(channels):
        return 0.18 + 0.5 * np.log2(channels) / np.log2(max_channels)

    def arrow(start, end, kind, rad=0.0):
        colour = _ARROWS[kind][0]
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color=colour, lw=1.3,
                                     connectionstyle=f"arc3,rad={rad}"))

    for m in maps:
        width = box_width(m["channels"])
        height = 0.35 + 0.9 * (m["size"] or max_size) / max_size
        y_centre = -m["level"] * level_height
        if previous is not None and m["level"] != previous["level"]:
            x = previous["x"] + (0.15 if m["level"] > previous["level"] else 0.35)
        left = x
        if m["kind"] == "concat":
            # Drawn with the up-convolution (below); the concatenation adds no new box.
            m.update(x=upconv_end, w=0.0)
            previous = m
            continue
        if m["kind"] == "upconv":
            # The cropped copy from the contracting path (white), then the up-convolved map.
            source = last_at_level[m["level"]]
            copy_width = box_width(source["channels"])
            ax.add_patch(Rectangle((left, y_centre - height / 2), copy_width, height,
                                   facecolor="white", edgecolor="black", lw=0.8))
            arrow((source["x"] + source["w"], y_centre), (left, y_centre), "skip")
            up_arrow_x = left + copy_width / 2
            left += copy_width
        face = "#f2f2f2" if m["kind"] == "input" else "#cfe0f5"
        ax.add_patch(Rectangle((left, y_centre - height / 2), width, height, facecolor=face, edgecolor="black", lw=0.8))
        ax.text(left + width / 2, y_centre + height / 2 + 0.05, str(m["channels"]), ha="center", va="bottom", fontsize=9)
        size_text = str(m["size"]) if m["size"] == m["width"] else f"{m['size']}x{m['width']}"
        ax.text(left + width / 2, y_centre - height / 2 - 0.04, size_text, ha="center", va="top", fontsize=8)
        if previous is not None:
            y_previous = -previous["level"] * level_height
            start = (previous["x"] + previous["w"], y_previous)
            if m["level"] > previous["level"]:
                arrow((previous["x"] + previous["w"], y_previous - 0.75), (left, y_centre + height / 2 + 0.2), "pool")
            elif m["kind"] == "upconv":
                arrow((previous["x"] + previous["w"] / 2, y_previous + 0.55), (up_arrow_x, y_centre - height / 2 - 0.05), "upconv")
            else:
                arrow(start, (left, y_centre), "output" if m["kind"] == "output" else "conv")
        m.update(x=left, w=width)
        if m["kind"] == "upconv":
            upconv_end = left + width
        if m["kind"] in ("conv", "input"):
            last_at_level[m["level"]] = m
        previous = m
        x = left + width + gap

    ax.set_xlim(-0.8, x + 0.2)
    ax.set_ylim(-depth * level_height - 1.3, 1.4)
    ax.set_axis_off()
    handles = [Patch(color=colour, label=text) for colour, text in _ARROWS.values()]
    ax.legend(handles=handles, loc="lower right", frameon=False, fontsize=10)
    inputs, outputs = maps[0], maps[-1]
    ax.set_title(
        f"{model.name}: {inputs['size']}x{inputs['width']}x{inputs['channels']} -> "
        f"{outputs['size']}x{outputs['width']}x{outputs['channels']}, {model.count_params():,} parameters",
        fontsize=12,
    )
    return fig
