"""The fast CPU warp of the elastic deformation: OpenCV's ``cv2.remap`` (``augment.elastic_deform(method="opencv")``).

The reference, ``scipy.ndimage.map_coordinates`` with cubic splines in float64,
takes about a tenth of a second for one 572 x 572 tile; ``cv2.remap`` does the
same warp in a few milliseconds. What differs, and why it does not matter:

* the image is interpolated with bicubic convolution (``INTER_CUBIC``, Keys'
  kernel with a = -0.75; the paper names "bicubic interpolation") instead of
  cubic splines, in float32, with the sub-pixel position rounded to 1/32
  pixel: on a smooth image the two differ by a fraction of a grey level;
* labels and weights are taken from the nearest pixel (``INTER_NEAREST``), as
  in the reference, so labels keep exactly their class values;
* outside the image ``BORDER_REFLECT_101`` mirrors without repeating the edge
  pixel (``dcb|abcd|cba``): the same rule as scipy's ``mode="mirror"`` and
  ``tiling.mirror_pad``.

The displacement field itself comes from ``augment.displacement_field``.
``augment.augment_sample`` flips and rotates the positions to read rather than
the warped arrays (:func:`oriented_positions`), and warps labels and weights
only over the network's output region (:func:`warp_at`): one pass over each
array, no copies.
"""

from __future__ import annotations

import cv2
import numpy as np

from .augment import _field_factors, _positions, _thin_product

__all__ = ["oriented_positions", "remap_sample", "warp_at"]

BORDER = cv2.BORDER_REFLECT_101  # = scipy's mode="mirror": the edge pixel is not repeated
_REMAP_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64)  # what cv2.remap takes


def _remap_image(image: np.ndarray, map_x, map_y) -> np.ndarray:
    """Bicubic warp of every channel; clipped to the input's range (the cubic overshoots), ints rounded back."""
    if image.dtype == np.float32 and (image.ndim == 2 or image.shape[-1] == 1):  # a grey float tile: no copies
        plane = image if image.ndim == 2 else image[..., 0]  # OpenCV reads a strided view (a tile of the image) as is
        low, high = cv2.minMaxLoc(plane)[:2]
        out = cv2.remap(plane, map_x, map_y, cv2.INTER_CUBIC, borderMode=BORDER)
        np.clip(out, low, high, out=out)
        return out if image.ndim == 2 else out[..., None]
    planes = image[..., None] if image.ndim == 2 else image
    low, high = planes.min(), planes.max()
    out = np.empty(planes.shape, np.float32)
    for first in range(0, planes.shape[-1], 4):  # cv2.remap takes up to 4 channels at a time
        channels = np.ascontiguousarray(planes[..., first : first + 4], dtype=np.float32)
        warped = cv2.remap(channels, map_x, map_y, cv2.INTER_CUBIC, borderMode=BORDER)
        out[..., first : first + 4] = warped.reshape(channels.shape)  # cv2 drops a single channel's axis
    np.clip(out, low, high, out=out)  # in place
    if np.issubdtype(image.dtype, np.integer):
        np.rint(out, out=out)
    out = out.astype(image.dtype, copy=False)
    return out[..., 0] if image.ndim == 2 else out


def _remap_nearest(array: np.ndarray, nearest_map) -> np.ndarray:
    """Nearest-neighbour warp: every output value is one of the input values, in the input's dtype."""
    work = array
    if array.dtype not in _REMAP_DTYPES:  # bool, int8, int64, ...: through int32 or float64, values unchanged
        if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
            if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
                raise ValueError(f"labels must fit in int32 for the OpenCV warp, got values up to {array.max()}.")
            work = array.astype(np.int32)
        else:
            work = array.astype(np.float64)
    if work.strides[-1] != work.itemsize:  # OpenCV needs each row contiguous (a tile's rows may be strided)
        work = np.ascontiguousarray(work)
    out = cv2.remap(work, nearest_map, None, cv2.INTER_NEAREST, borderMode=BORDER)
    return out.astype(array.dtype, copy=False)


def _turn(factors, flips, quarter_turns):
    """Flip and rotate a product ``a @ b`` by changing its factors (as ``np.flip``, ``np.rot90`` on the product)."""
    a, b = factors
    for axis in flips:
        a, b = (a[::-1], b) if axis == 0 else (a, b[:, ::-1])
    for _ in range(quarter_turns):  # np.rot90(m) = m[:, ::-1].T, and (a @ b[:, ::-1]).T = b[:, ::-1].T @ a.T
        a, b = b[:, ::-1].T, a.T
    return a, b


def oriented_positions(coarse: np.ndarray, shape, flips=(), quarter_turns: int = 0):
    """Positions to read (rows, cols), each (H, W) float32, flipped and rotated: the maps of :func:`warp_at`.

    ``coarse`` (2, grid, grid) are the lattice displacements that
    ``augment.displacement_field`` spreads over the (H, W) tile; output pixel
    (y, x) reads the input at (y + dy, x + dx). ``flips`` (axes) and then
    ``quarter_turns`` flip and rotate the maps as ``np.flip`` and ``np.rot90``
    would. Each map is a product of two thin matrices, (H, grid + 1) and
    (grid + 1, W): the cubic interpolation of the displacements, plus the pixel
    grid as one more term. A flip or a rotation of the product is a flip or a
    transpose of its factors, so each map is computed once, already turned and
    contiguous: no full-size copies.
    """
    height, width = shape
    rows_factor, cols_factors = _field_factors(coarse, shape)  # field[k] = rows_factor @ cols_factors[k]
    along_rows, along_cols = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    ones_rows, ones_cols = np.ones(height), np.ones(width)
    products = [  # y + dy = [interp | y] @ [dy coarse; 1],  x + dx = [interp | 1] @ [dx coarse; x]
        (np.column_stack([rows_factor, along_rows]), np.vstack([cols_factors[0], ones_cols])),
        (np.column_stack([rows_factor, ones_rows]), np.vstack([cols_factors[1], along_cols])),
    ]
    return tuple(_thin_product(*_turn(factors, flips, quarter_turns)) for factors in products)


def warp_at(image: np.ndarray, labels: np.ndarray, weights, positions, *, label_border: int = 0):
    """Image (bicubic), labels and weights (nearest) read at ``positions``: (rows, cols) (H, W) of each output pixel.

    Labels and weights are returned without ``label_border`` pixels on each
    side, and only that centre is warped.
    """
    map_y, map_x = (np.ascontiguousarray(part, dtype=np.float32) for part in positions)
    warped_image = _remap_image(image, map_x, map_y)
    height, width = map_y.shape
    inner = (slice(label_border, height - label_border), slice(label_border, width - label_border))
    # the nearest pixel of each centre position, rounded once for labels and weights (fixed-point map);
    # OpenCV reads the centre views of the maps as they are (each row contiguous), no copies
    nearest_map, _ = cv2.convertMaps(map_x[inner], map_y[inner], cv2.CV_16SC2, nninterpolation=True)
    warped_labels = _remap_nearest(labels, nearest_map)
    warped_weights = None if weights is None else _remap_nearest(weights, nearest_map)
    return warped_image, warped_labels, warped_weights


def remap_sample(image: np.ndarray, labels: np.ndarray, weights, field: np.ndarray):
    """Warp image (bicubic), labels and weights (nearest) with the displacement ``field`` (2, H, W).

    Output pixel (y, x) takes the input at (y + dy, x + dx). Returns
    (image, labels, weights) with the input shapes and dtypes; weights None if not given.
    """
    return warp_at(image, labels, weights, _positions(field))
