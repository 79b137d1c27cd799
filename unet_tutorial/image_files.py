"""One image or mask file of a user's own data: read it (PNG, TIFF, JPEG) with checks, write PNG and TIFF atomically.

Images are returned as (H, W, C) arrays with C = 1 (grey) or 3 (RGB), in the
dtype they were stored in (uint8, uint16 or float32); ``tiling.as_float_image``
turns them into network input. Masks are returned as (H, W) integer arrays
together with their kind:

* ``"index"``: one class index per pixel (grey PNG or TIFF);
* ``"palette"``: a palette ("P" mode) PNG, whose palette index is the class;
* ``"binary"``: a grey mask holding only 0 and 255, read as classes 0 and 1.

Every error names the file and says what to do with it.
"""

from __future__ import annotations

import pathlib

import numpy as np

from .files import write_atomic

__all__ = ["IMAGE_SUFFIXES", "MASK_SUFFIXES", "read_image", "read_mask", "write_png", "write_tiff"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
MASK_SUFFIXES = (".png", ".tif", ".tiff")  # JPEG is lossy: it changes class indices at edges
_TIFF = (".tif", ".tiff")


def _open_pixels(path: pathlib.Path) -> tuple[np.ndarray, str]:
    """(pixels, Pillow mode or "tiff") of one file; a clear error when it cannot be decoded."""
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            return np.asarray(tifffile.imread(path)), "tiff"
        from PIL import Image

        with Image.open(path) as picture:
            picture.load()  # decodes everything now: a truncated file fails here
            mode = picture.mode
            if mode in ("RGBA", "LA", "PA"):  # the alpha channel is not part of the image
                picture = picture.convert({"RGBA": "RGB", "LA": "L", "PA": "P"}[mode])
                mode = picture.mode
            if mode == "1":
                picture, mode = picture.convert("L"), "L"
            return np.asarray(picture), mode
    except Exception as error:  # PIL.UnidentifiedImageError, OSError("truncated"), tifffile errors, ...
        raise ValueError(
            f"{path}: cannot be read as an image ({type(error).__name__}: {error}). The file may be truncated or "
            "not an image; open it in an image viewer, and export it again or remove it from the folder."
        ) from error


def read_image(path) -> np.ndarray:
    """One image as (H, W, C), C = 1 (grey) or 3 (RGB); uint8/uint16 as stored, floats checked to lie in [0, 1]."""
    path = pathlib.Path(path)
    pixels, mode = _open_pixels(path)
    if mode == "P":  # a palette image used as an image: its colours are the image
        from PIL import Image

        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{path}: expected one 2-D grey or RGB image, got an array of shape {pixels.shape}. "
            "Save each image as its own file (a stack of frames: one file per frame)."
        )
    pixels = pixels[..., :3]  # RGBA TIFF: drop the alpha channel
    if np.issubdtype(pixels.dtype, np.signedinteger):
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ValueError(f"{path}: holds values {pixels.min()}..{pixels.max()}; save it as 8- or 16-bit.")
        pixels = pixels.astype(np.uint16)
    elif np.issubdtype(pixels.dtype, np.floating):
        finite = np.isfinite(pixels)
        if not finite.all():
            raise ValueError(f"{path}: holds {int((~finite).sum())} pixels that are NaN or infinite; "
                             "replace them (e.g. by 0) or export the image again.")
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0 or high > 1:
            raise ValueError(f"{path}: float pixels must lie in [0, 1], found {low:g}..{high:g}. Rescale it, "
                             "e.g. (image - image.min()) / (image.max() - image.min()), or save it as 8/16-bit.")
        pixels = pixels.astype(np.float32)
    elif not (np.issubdtype(pixels.dtype, np.unsignedinteger) or pixels.dtype == bool):
        raise ValueError(f"{path}: holds {pixels.dtype} pixels; save it as an 8- or 16-bit image.")
    return np.ascontiguousarray(pixels)


def read_mask(path) -> tuple[np.ndarray, str]:
    """(mask (H, W) int32, kind): ``kind`` is "index", "palette" or "binary" (0/255 read as 0/1)."""
    path = pathlib.Path(path)
    if path.suffix.lower() not in MASK_SUFFIXES:
        raise ValueError(f"{path}: masks must be PNG or TIFF ({', '.join(MASK_SUFFIXES)}); JPEG compression "
                         "changes class indices at edges. Save the mask as PNG.")
    pixels, mode = _open_pixels(path)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all():
            pixels = pixels[..., 0]  # grey values saved as RGB
        else:
            raise ValueError(
                f"{path}: is an RGB colour mask, not an index or palette image, so its colours cannot be read as "
                "classes. Save it as a palette PNG (PIL: Image.quantize or convert('P') with your class colours) "
                "or as a grey PNG holding one class index 0..K-1 per pixel."
            )
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D mask, got an array of shape {pixels.shape}; save one mask per file.")
    if not (np.issubdtype(pixels.dtype, np.integer) or pixels.dtype == bool):
        raise ValueError(f"{path}: holds {pixels.dtype} values; a mask holds integer class indices 0..K-1. "
                         "Save it as an 8- or 16-bit grey PNG or TIFF.")
    mask = pixels.astype(np.int32)
    if mode == "P":
        return mask, "palette"
    values = np.unique(mask)
    if 255 in values and set(values.tolist()) <= {0, 255}:
        return (mask == 255).astype(np.int32), "binary"
    return mask, "index"


def write_png(path, array) -> pathlib.Path:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG, atomically."""
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_png takes uint8 arrays, got {array.dtype}.")
    return write_atomic(path, lambda temporary: Image.fromarray(array).save(temporary, format="PNG"))


def write_tiff(path, array) -> pathlib.Path:
    """Write an array as a (compressed) grey TIFF, atomically; a (K, H, W) array becomes K pages."""
    import tifffile

    return write_atomic(path, lambda temporary: tifffile.imwrite(temporary, np.asarray(array), photometric="minisblack",
                                                                 compression="zlib"))
