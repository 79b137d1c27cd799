"""Data augmentation of U-Net (Ronneberger et al. 2015, Sec. 3.1).

The paper trains on very few images (30 ISBI slices) and relies on augmentation,
above all on random elastic deformations: "We generate smooth deformations using
random displacement vectors on a coarse 3 by 3 grid. The displacements are
sampled from a Gaussian distribution with 10 pixels standard deviation.
Per-pixel displacements are then computed using bicubic interpolation."
It also mentions shifts, rotations and grey-value variations.

Every geometric operation here is applied identically to the image, the labels
and the weight map. Images are resampled with a cubic interpolation, labels and
weight maps with nearest neighbour, so labels keep exactly their class values.
Outside the image, values are mirrored (the edge pixel is not repeated, the same
convention as ``tiling.mirror_pad``).

Two resamplers do the warp (``method``), both from the same displacement field
(:func:`displacement_field`, the one rule for the coarse grid):

* ``"scipy"``, the reference: ``scipy.ndimage.map_coordinates`` with cubic
  splines (order 3) in float64, ``mode="mirror"``. Exact but slow: about a
  tenth of a second for one 572 x 572 tile.
* ``"opencv"``: ``cv2.remap`` with bicubic convolution (``INTER_CUBIC``) for the
  image and ``INTER_NEAREST`` for labels and weights, ``BORDER_REFLECT_101``
  (= scipy's ``"mirror"``), in float32 (:mod:`.augment_opencv`). Ten times and
  more faster; it differs from the reference by a fraction of a grey level.

``"auto"`` (the default of :func:`augment_sample`, and so of training on a
CPU) is ``"opencv"``; :func:`elastic_deform` keeps the reference as its
default, the one chapter 5 teaches. ``augment_device`` does the same
augmentation on a whole batch with ``keras.ops`` on the accelerator, inside
the train step: what training on a GPU does by default
(``augment_device.on_device``).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

__all__ = ["METHODS", "as_generator", "augment_sample", "displacement_field", "elastic_deform"]

METHODS = ("auto", "opencv", "scipy")  # resamplers of the elastic warp; "auto" = "opencv"


def as_generator(rng=None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from None (fresh entropy), an int seed or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}.")


def _check_sample(image, labels, weights):
    """Check shapes: image (H, W) or (H, W, C); labels and weights (H, W)."""
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}.")
    if labels.shape != image.shape[:2]:
        raise ValueError(
            f"labels must have the image's height and width {image.shape[:2]}, got shape "
            f"{labels.shape}. Crop or pad both to the same size before augmenting."
        )
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != image.shape[:2]:
            raise ValueError(f"weights must have shape {image.shape[:2]} like the labels, got {weights.shape}.")
    return image, labels, weights


def _check_method(method: str) -> str:
    """The resampler that ``method`` names ("auto" -> "opencv"); a clear error for anything else."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    return "opencv" if method == "auto" else method


def _resample_image(image: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Cubic-spline resampling of every channel at ``coordinates`` (2, H, W).

    Cubic splines overshoot a little at sharp edges, so the result is clipped to
    the input's value range; integer images are rounded back to their dtype.
    """
    planes = image[..., None] if image.ndim == 2 else image
    low, high = planes.min(), planes.max()
    out = np.stack(
        [
            ndimage.map_coordinates(planes[..., c].astype(np.float64), coordinates, order=3, mode="mirror")
            for c in range(planes.shape[-1])
        ],
        axis=-1,
    )
    out = np.clip(out, low, high)
    if np.issubdtype(image.dtype, np.integer):
        out = np.rint(out)
    out = out.astype(image.dtype)
    return out[..., 0] if image.ndim == 2 else out


def _resample_nearest(array: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling: every output value is one of the input values."""
    return ndimage.map_coordinates(array, coordinates, order=0, mode="mirror")


@functools.lru_cache(maxsize=32)
def _cubic_interpolation_matrix(size: int, grid: int) -> np.ndarray:
    """(size, grid) matrix M with ``M @ v`` = cubic-spline interpolation of ``v`` at ``size`` points.

    The ``grid`` lattice points lie evenly from the first to the last pixel
    (pixel 0 -> lattice 0, pixel size-1 -> lattice grid-1). Interpolation is
    linear in the data, so column k is the interpolation of the k-th unit vector.
    Equivalent to ``ndimage.map_coordinates(field, coordinates, order=3,
    mode="mirror")`` on the 2-D lattice, but much faster for a whole image.
    """
    positions = np.linspace(0, grid - 1, size)  # pixel positions in lattice units
    unit_vectors = np.eye(grid)
    columns = [ndimage.map_coordinates(unit, [positions], order=3, mode="mirror") for unit in unit_vectors]
    matrix = np.stack(columns, axis=1)
    matrix.flags.writeable = False  # cached: shared by every call
    return matrix


def _coarse_displacements(grid: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The random draw of the elastic deformation: (dy, dx) ~ N(0, sigma**2) pixels on the lattice, (2, grid, grid)."""
    if not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2 (the paper uses 3), got {grid!r}.")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 pixels (the paper uses 10), got {sigma}.")
    return rng.normal(0.0, sigma, size=(2, grid, grid))


def displacement_field(shape, grid: int = 3, sigma: float = 10.0, rng=None, dtype=np.float64) -> np.ndarray:
    """A random smooth displacement field (dy, dx), (2, H, W) pixels of ``dtype`` (paper Sec. 3.1).

    Displacements are drawn from N(0, sigma**2) on a coarse ``grid`` x ``grid``
    lattice whose outer points lie on the image corners and edges, and
    interpolated to every pixel with cubic splines (the paper: "bicubic
    interpolation"). The one rule for the field: every resampler uses it.
    """
    return _spread(_coarse_displacements(grid, sigma, as_generator(rng)), shape, dtype)


def _field_factors(coarse: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """The field as thin factors: ``field[k] = rows @ cols[k]``, rows (H, grid), cols (2, grid, W).

    Bicubic (cubic B-spline) interpolation is separable: interpolate along the
    rows with an (H, grid) matrix and along the columns with a (W, grid) one.
    """
    height, width = shape
    grid = coarse.shape[-1]
    rows = _cubic_interpolation_matrix(height, grid)
    cols = coarse @ _cubic_interpolation_matrix(width, grid).T  # (2, grid, W)
    return rows, cols


def _thin_product(a: np.ndarray, b: np.ndarray, dtype=np.float32, out=None) -> np.ndarray:
    """``a @ b`` in ``dtype`` for a thin (H, k) @ (k, W) product, k a few.

    einsum, not @: such a product is slow in a multithreaded BLAS. The factors
    are made contiguous first (a reversed view makes einsum ten times slower);
    they are tiny, so copying them costs nothing.
    """
    return np.einsum("hk,kw->hw", np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(b, dtype=dtype), out=out)


def _spread(coarse: np.ndarray, shape, dtype) -> np.ndarray:
    """The coarse (2, grid, grid) displacements interpolated to every pixel: the field (2, H, W)."""
    rows, cols = _field_factors(coarse, shape)
    result = np.empty((2, *shape), dtype)
    for k in range(2):
        _thin_product(rows, cols[k], dtype, out=result[k])
    return result


def elastic_deform(image, labels, grid: int = 3, sigma: float = 10.0, rng=None, weights=None, *,
                   method: str = "scipy"):
    """Random smooth elastic deformation (Ronneberger et al. 2015, Sec. 3.1).

    The displacement field comes from :func:`displacement_field` (3 x 3 grid,
    N(0, sigma**2) pixels, bicubic interpolation). Output pixel (y, x) takes
    the input value at (y + dy(y, x), x + dx(y, x)).

    Args:
        image: (H, W) or (H, W, C) array, any numeric dtype (resampled with a cubic).
        labels: (H, W) integer class or instance labels (nearest neighbour).
        grid: number of lattice points per side (paper: 3).
        sigma: standard deviation of the displacements in pixels (paper: 10).
            ``sigma=0`` gives the identity.
        rng: None, an int seed or a ``numpy.random.Generator``; the same seed
            gives the same deformation, whatever the ``method``.
        weights: optional (H, W) weight map, deformed like the labels.
        method: "scipy" (default: the reference, cubic splines), "opencv"
            (``cv2.remap``, bicubic, 10x+ faster) or "auto" (= "opencv").

    Returns:
        (image, labels, weights): deformed arrays with the input shapes and
        dtypes; ``weights`` is None when none was given.
    """
    image, labels, weights = _check_sample(image, labels, weights)
    method = _check_method(method)
    field = displacement_field(labels.shape, grid, sigma, rng, np.float32 if method == "opencv" else np.float64)
    if method == "opencv":
        from .augment_opencv import remap_sample  # noqa: PLC0415 (cv2 loads only when used)

        return remap_sample(image, labels, weights, field)
    return _warp_reference(image, labels, weights, field)


def _positions(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) (H, W) float32 positions to read, (y + dy, x + dx): the field added to the pixel grid."""
    dy, dx = field.astype(np.float32)
    height, width = dy.shape
    dy += np.arange(height, dtype=np.float32)[:, None]
    dx += np.arange(width, dtype=np.float32)[None, :]
    return dy, dx


def _warp_reference(image, labels, weights, field):
    """scipy's warp (cubic splines for the image, nearest for labels and weights) with ``field`` (2, H, W)."""
    coordinates = np.indices(labels.shape, dtype=np.float64) + field
    deformed_image = _resample_image(image, coordinates)
    deformed_labels = _resample_nearest(labels, coordinates)
    deformed_weights = None if weights is None else _resample_nearest(weights, coordinates)
    return deformed_image, deformed_labels, deformed_weights


def _jitter_grey_values(image: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float, *,
                        in_place: bool = False):
    """Random contrast and brightness: ``(x - mean) * c + mean + b``, clipped to range.

    ``c`` is drawn from U(1 - contrast, 1 + contrast) and ``b`` from
    U(-brightness, brightness) on the [0, 1] scale (integer images are scaled by
    their dtype's maximum, e.g. 255 for uint8, and converted back). ``in_place``:
    change a float32 ``image`` itself (an array the caller owns).
    """
    if np.issubdtype(image.dtype, np.integer):
        scale = float(np.iinfo(image.dtype).max)
    else:
        scale = 1.0
    work = np.float32 if image.dtype == np.float32 else np.float64  # float32 tiles stay float32 (faster)
    factor = rng.uniform(1.0 - contrast, 1.0 + contrast)
    shift = rng.uniform(-brightness, brightness)
    # one copy, then in place: (v - mean) * c + mean + b = v * c + (mean * (1 - c) + b), on the [0, 1] scale
    values = image.astype(work, copy=not (in_place and image.dtype == work))
    mean = float(values.mean()) / scale  # numpy sums float32 pairwise: exact enough, and faster than float64
    values *= work(factor)
    values += work((mean * (1.0 - factor) + shift) * scale)
    np.clip(values, 0.0, scale, out=values)
    if np.issubdtype(image.dtype, np.integer):
        np.rint(values, out=values)
    return values.astype(image.dtype, copy=False)


def augment_sample(
    image,
    labels,
    weights=None,
    rng=None,
    *,
    elastic: bool = True,
    flip: bool = True,
    rotate: bool = True,
    intensity: bool = True,
    grid: int = 3,
    sigma: float = 10.0,
    brightness: float = 0.1,
    contrast: float = 0.2,
    method: str = "auto",
    label_border: int = 0,
):
    """One random augmentation of a training sample (Ronneberger et al. 2015, Sec. 3.1).

    In order: elastic deformation (:func:`elastic_deform`), a random flip of each
    axis, a random rotation by a multiple of 90 degrees, and a grey-value jitter
    of the image only. Geometric steps act identically on image, labels, weights.

    Args:
        image: (H, W) or (H, W, C) array. Float images are taken to lie in [0, 1]
            for the grey-value jitter; integer images are scaled by their dtype's
            maximum.
        labels: (H, W) integer labels.
        weights: optional (H, W) weight map.
        rng: None, an int seed or a ``numpy.random.Generator``.
        elastic, flip, rotate, intensity: switch each step on or off.
        grid, sigma: elastic deformation lattice size and displacement std (px).
        brightness: largest grey-value shift, on the [0, 1] scale.
        contrast: largest relative change of contrast.
        method: resampler of the elastic warp: "auto" (default, = "opencv",
            the fastest on the CPU), "opencv" or "scipy" (the reference). The
            same seed draws the same deformation, flips and jitter with each.
        label_border: return labels and weights without this many pixels on
            each side: the context of a valid-padding input tile that the
            network's output does not cover (the pipeline passes (T - t) / 2).
            Only the part returned is warped.

    Returns:
        (image, labels, weights) with the input dtypes; ``weights`` None if not
        given. Non-square images are rotated only by 0 or 180 degrees, so the
        shape never changes.
    """
    image, labels, weights = _check_sample(image, labels, weights)
    method = _check_method(method)
    rng = as_generator(rng)
    height, width = labels.shape
    if not (0 <= label_border and 2 * label_border < min(height, width)):
        raise ValueError(f"label_border must leave labels to return: got {label_border} for a {height}x{width} tile.")
    coarse = _coarse_displacements(grid, sigma, rng) if elastic else None
    # The random draws in a fixed order (deformation, flips, rotation, jitter): a seed gives the same sample
    # whatever the resampler.
    flips = [axis for axis in (0, 1) if flip and rng.random() < 0.5]
    quarter_turns = 0
    if rotate:
        quarter_turns = int(rng.integers(4)) if height == width else 2 * int(rng.integers(2))

    if coarse is not None and method == "opencv":
        from .augment_opencv import oriented_positions, warp_at  # noqa: PLC0415 (cv2 loads only when used)

        # Output pixel (y, x) reads the input at the positions in the maps; flipping or rotating the maps
        # flips or rotates the result, and the labels' maps are the maps' centre: one warp, no copies.
        positions = oriented_positions(coarse, labels.shape, flips, quarter_turns)
        image, labels, weights = warp_at(image, labels, weights, positions, label_border=label_border)
        owned = True  # new arrays: the jitter may change the image in place
    else:

        def flip_and_rotate(array):
            for axis in flips:
                array = np.flip(array, axis=axis)
            return np.rot90(array, k=quarter_turns, axes=(0, 1))

        def centre(array):
            return array[label_border : height - label_border, label_border : width - label_border]

        if coarse is not None:
            image, labels, weights = _warp_reference(image, labels, weights, _spread(coarse, labels.shape, np.float64))
        arrays = [flip_and_rotate(array) for array in (image, labels, *(() if weights is None else (weights,)))]
        image = np.ascontiguousarray(arrays[0])
        labels = np.ascontiguousarray(centre(arrays[1]))
        weights = None if weights is None else np.ascontiguousarray(centre(arrays[2]))
        owned = False  # the image may be the caller's own array

    if intensity:
        image = _jitter_grey_values(image, rng, brightness, contrast, in_place=owned)
    return image, labels, weights
