"""Overlap-tile prediction (Ronneberger et al. 2015, Sec. 2 and Fig. 2).

A U-Net with unpadded ("valid") convolutions predicts a smaller output tile
(388x388) from a larger input tile (572x572): every output pixel sees its full
context. To segment an image of any size, the paper cuts it into output tiles
that cover it, feeds each with its input tile around it, and extrapolates the
missing context at the image border by mirroring (Fig. 2: "Missing input data
is extrapolated by mirroring"). This module does that.

Conventions and one refinement of the paper:

* Mirroring reflects about the edge pixel without repeating it (numpy
  ``np.pad(mode="reflect")``, scipy ``mode="mirror"``): ``a b c | b a``.
* Tiles step by ``s`` = the output size rounded down to a multiple of the
  pooling factor 2**(depth-1) (384 instead of 388 for the paper's network) and
  each tile keeps the first ``s`` rows/columns of its output. Every tile then
  sits on the same 2x2-max-pooling grid as the whole image, so the stitched
  result equals, to float precision, the network applied once to the whole
  mirror-padded image: truly seamless. Stepping by 388 (not a multiple of 16)
  would shift the pooling grid from tile to tile and leave small seams.
* A "same"-padding model has no context border of its own; its tile edges see
  zero padding, so each tile keeps only its central part: tiles overlap by a
  margin of about T/8 (a multiple of the pooling factor) on every side.
* Test-time augmentation (``tta=True``) averages the predictions for the 8
  flips and 90-degree rotations of the image, each mapped back. The paper's
  ISBI result is "averaged over 7 rotated versions of the input data" (Sec. 4);
  the 8 symmetries of the pixel grid need no interpolation, so they are used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from . import shapes
from .model import InputSizeCheck

__all__ = ["mirror_pad", "predict_tiled", "dihedral_transforms"]


def mirror_pad(image, border):
    """Extend an image by mirroring at its edges (paper Fig. 2).

    Reflects without repeating the edge pixel (``np.pad(mode="reflect")``);
    a border wider than the image mirrors again and again (the image is
    extended periodically with period 2*(n-1)), so any border works.

    Args:
        image: (H, W) or (H, W, C) array.
        border: int (same on all four sides) or ``((top, bottom), (left, right))``.

    Returns:
        (H + top + bottom, W + left + right[, C]) array of the same dtype.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}.")
    if isinstance(border, (int, np.integer)):
        widths = ((int(border), int(border)), (int(border), int(border)))
    else:
        widths = tuple(tuple(int(b) for b in pair) for pair in border)
        if len(widths) != 2 or any(len(pair) != 2 for pair in widths):
            raise ValueError(f"border must be an int or ((top, bottom), (left, right)), got {border!r}.")
    if min(min(pair) for pair in widths) < 0:
        raise ValueError(f"border widths must be >= 0, got {border!r}.")
    if any(size < 2 and sum(pair) > 0 for size, pair in zip(image.shape[:2], widths)):
        raise ValueError(f"cannot mirror an image of shape {image.shape}: need at least 2 pixels per side.")
    pad = widths + ((0, 0),) * (image.ndim - 2)
    return np.pad(image, pad, mode="reflect")


def dihedral_transforms():
    """The 8 flips/rotations as (forward, inverse) pairs acting on axes 0 and 1."""

    def make(flip, quarter_turns):
        def forward(a):
            a = np.flip(a, axis=1) if flip else a
            return np.rot90(a, quarter_turns, axes=(0, 1))

        def inverse(a):
            a = np.rot90(a, -quarter_turns, axes=(0, 1))
            return np.flip(a, axis=1) if flip else a

        return forward, inverse

    return [make(flip, k) for flip in (False, True) for k in range(4)]


@dataclass(frozen=True)
class _AxisPlan:
    """How one image axis is cut into tiles (all sizes in pixels)."""

    input_size: int  # T: input tile size
    output_size: int  # t: output tile size
    context: int  # (T - t) / 2: pixels between input and output tile edges
    keep_start: int  # first kept row of each output tile
    step: int  # s: rows kept from each tile = stride between tiles
    n_tiles: int  # number of tiles along this axis
    pad_before: int  # mirrored rows added before the image
    pad_after: int  # mirrored rows added after the image


def _plan_axis(image_size, input_size, output_size, pooling):
    context = (input_size - output_size) // 2
    if output_size < input_size:  # valid padding: the context border comes with the network
        step = output_size // pooling * pooling or output_size
        keep_start = 0
    else:  # same padding: keep the centre, away from the zero-padded tile edges
        keep_start = input_size // 8 // pooling * pooling
        step = input_size - 2 * keep_start
    n_tiles = max(1, math.ceil(image_size / step))
    pad_before = context + keep_start
    pad_after = (n_tiles - 1) * step + input_size - pad_before - image_size
    return _AxisPlan(input_size, output_size, context, keep_start, step, n_tiles, pad_before, pad_after)


def _unet_depth_and_padding(model):
    """(depth, padding) of a ``build_unet`` model, or guessed from the pooling/conv layers."""
    for layer in model.layers:
        if isinstance(layer, InputSizeCheck):  # build_unet's first layer knows both
            return layer.depth, layer.padding
    n_pooling = sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    conv_paddings = [layer.padding for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return n_pooling + 1, (conv_paddings[0] if conv_paddings else "same")


def _tile_sizes(model, tile_size, depth, padding):
    """((T_h, T_w), (t_h, t_w)): input and output tile sizes for ``model``."""
    model_size = tuple(model.input_shape[1:3])
    if tile_size is None:
        if None in model_size:
            raise ValueError(
                f"model has input shape {model.input_shape}, with no fixed tile size: pass tile_size "
                f"(a valid input size, e.g. one of shapes.valid_input_sizes(100, 600, depth={depth}))."
            )
        tile = model_size
    else:
        tile = (tile_size, tile_size) if isinstance(tile_size, (int, np.integer)) else tuple(tile_size)
        tile = tuple(int(t) for t in tile)
        for fixed, wanted in zip(model_size, tile):
            if fixed is not None and fixed != wanted:
                raise ValueError(
                    f"tile_size {tile_size} differs from the model's input shape {model.input_shape}; "
                    "leave tile_size=None or build the model with input_shape=(None, None, C)."
                )
    if None not in tuple(model.output_shape[1:3]):
        return tile, tuple(model.output_shape[1:3])
    for size in tile:
        shapes.check_input_size(size, depth=depth, padding=padding)
    return tile, tuple(shapes.output_size(size, depth=depth, padding=padding) for size in tile)


def as_float_image(image, name: str = "image") -> np.ndarray:
    """One network input image as (H, W, C) float32: integers scaled by their dtype's maximum, bool as 0/1.

    The one rule for turning a user's image into network input (prediction here,
    training data in ``pipeline``): uint8 0..255 becomes 0..1, floats are kept.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (H, W, C), got shape {image.shape}.")
    if image.dtype == bool:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        return (image / np.iinfo(image.dtype).max).astype(np.float32)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name} must hold numbers, got dtype {image.dtype}.")
    return image.astype(np.float32)


def _predict_batch(model, batch, batch_size):
    """Predict a batch, padded to ``batch_size`` so the compiled function is reused."""
    n = len(batch)
    if n < batch_size:
        filler = np.zeros((batch_size - n,) + batch.shape[1:], batch.dtype)
        batch = np.concatenate([batch, filler])
    return np.asarray(model.predict_on_batch(batch))[:n]


def _predict_overlap_tile(model, image, rows, cols, batch_size):
    """One pass of the overlap-tile strategy over an (H, W, C) float32 image."""
    height, width = image.shape[:2]
    padded = mirror_pad(image, ((rows.pad_before, rows.pad_after), (cols.pad_before, cols.pad_after)))
    n_classes = model.output_shape[-1]
    result = np.zeros((rows.n_tiles * rows.step, cols.n_tiles * cols.step, n_classes), np.float32)
    corners = [(i * rows.step, j * cols.step) for i in range(rows.n_tiles) for j in range(cols.n_tiles)]
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        tiles = np.stack([padded[r : r + rows.input_size, c : c + cols.input_size] for r, c in chunk])
        predictions = _predict_batch(model, tiles, batch_size)  # (B, t_h, t_w, K)
        for (r, c), prediction in zip(chunk, predictions):
            kept = prediction[rows.keep_start : rows.keep_start + rows.step, cols.keep_start : cols.keep_start + cols.step]
            result[r : r + rows.step, c : c + cols.step] = kept
    return result[:height, :width]


def predict_tiled(model, image, tile_size=None, batch_size: int = 4, tta: bool = False):
    """Class probabilities for a whole image of any size, by overlap-tiling.

    Ronneberger et al. 2015, Sec. 2, Fig. 2 (see the module docstring for how
    the tiles are placed and why they step by a multiple of the pooling factor).

    Args:
        model: a Keras model mapping (B, T, T, C) to (B, t, t, K) probabilities,
            e.g. ``build_unet``; valid (t < T) or same (t == T) padding.
        image: (H, W) or (H, W, C) array of any size. Integer images (uint8) are
            scaled to [0, 1] by their dtype's maximum; float images are used as
            they are (they should already lie in [0, 1]).
        tile_size: input tile size T (int or (T_h, T_w)). Default: the model's
            fixed input size; required when the model's input shape is None.
        batch_size: tiles per call of ``model.predict_on_batch``.
        tta: average over the 8 flips/rotations of the image (test-time
            augmentation), each prediction mapped back before averaging.

    Returns:
        (H, W, K) float32 probabilities.

    Raises:
        ValueError: for a tile size the model cannot take (naming the nearest
            valid sizes), a channel mismatch, or a model without a tile size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    depth, padding = _unet_depth_and_padding(model)
    (tile_h, tile_w), (out_h, out_w) = _tile_sizes(model, tile_size, depth, padding)
    for size_in, size_out in ((tile_h, out_h), (tile_w, out_w)):
        if (size_in - size_out) % 2 or size_out > size_in:
            raise ValueError(f"model maps {size_in} to {size_out} pixels; expected a centred output no larger than the input.")
    image = as_float_image(image)
    if image.shape[-1] != model.input_shape[-1]:
        raise ValueError(f"the model takes {model.input_shape[-1]} channel(s), the image has shape {image.shape}.")
    pooling = 2 ** (depth - 1)

    transforms = dihedral_transforms() if tta else dihedral_transforms()[:1]
    total = None
    for forward, inverse in transforms:
        view = np.ascontiguousarray(forward(image))
        rows = _plan_axis(view.shape[0], tile_h, out_h, pooling)
        cols = _plan_axis(view.shape[1], tile_w, out_w, pooling)
        probabilities = inverse(_predict_overlap_tile(model, view, rows, cols, batch_size))
        total = probabilities if total is None else total + probabilities
    return np.ascontiguousarray(total / len(transforms), dtype=np.float32)
