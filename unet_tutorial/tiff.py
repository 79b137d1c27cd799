"""Reading and writing TIFF images, with errors that say what is wrong with a file.

The datasets come as TIFF files: single frames and masks (Cell Tracking
Challenge, LZW-compressed, which needs ``imagecodecs``) and 30-page stacks
(ISBI 2012). ``read_tiff`` turns a damaged, truncated or foreign file into an
``ImageFormatError`` instead of a half-read array; ``check_image`` checks the
number of dimensions and the dtype of what was read.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Sequence

import numpy as np
import tifffile

from .files import write_atomic
from .manifest import ImageFormatError

__all__ = ["check_image", "read_tiff", "write_tiff_stack"]


class _Collect(logging.Handler):
    """Keeps the warnings that tifffile logs while a file is read."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def read_tiff(path) -> np.ndarray:
    """Read a whole TIFF file (one page or a stack) into a numpy array.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageFormatError: not a TIFF, truncated, or not decodable (LZW needs
            the ``imagecodecs`` package).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    # tifffile logs (rather than raises) broken page chains and returns what it
    # could read; treat such a warning as an error.
    collect = _Collect()
    logger = logging.getLogger("tifffile")
    logger.addHandler(collect)
    try:
        with tifffile.TiffFile(path) as tif:
            size = tif.filehandle.size
            for page in tif.pages:
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size:
                    raise ImageFormatError(
                        f"{path} is truncated: its image data end at byte {max(ends)} but the "
                        f"file has {size} bytes. Download or copy it again."
                    )
            array = tif.asarray()
    except ImageFormatError:
        raise
    except Exception as error:  # tifffile/imagecodecs raise many types
        hint = " Reading LZW-compressed TIFF needs `pip install imagecodecs`." if "imagecodecs" in str(error) else ""
        raise ImageFormatError(
            f"Could not read {path} as a TIFF image ({type(error).__name__}: {error}). "
            f"Expected an uncompressed or LZW-compressed TIFF.{hint}"
        ) from error
    finally:
        logger.removeHandler(collect)
    if collect.messages or array.size == 0:
        detail = collect.messages[0] if collect.messages else "no pixel data"
        raise ImageFormatError(
            f"{path} is a damaged or truncated TIFF ({detail}). Download or copy it again."
        )
    return array


def check_image(array: np.ndarray, path, ndim: int, dtypes: Sequence[str], what: str) -> None:
    """Raise ``ImageFormatError`` unless ``array`` has ``ndim`` dimensions and one of ``dtypes``.

    ``what`` names the expected content in the message (e.g. "a grey-value frame").
    """
    if array.ndim != ndim:
        extra = ""
        if array.ndim == ndim + 1 and array.shape[-1] in (2, 3, 4):
            extra = f" It looks like an image with {array.shape[-1]} channels; expected one (grey values)."
        raise ImageFormatError(
            f"{path}: expected {what} with {ndim} dimensions, got shape {array.shape}.{extra}"
        )
    if array.dtype.name not in dtypes:
        raise ImageFormatError(
            f"{path}: expected {what} of dtype {' or '.join(dtypes)}, got {array.dtype}."
        )


def write_tiff_stack(path, array: np.ndarray) -> pathlib.Path:
    """Write a (slices, rows, cols) stack as an ImageJ TIFF, atomically (as the ISBI files are)."""
    return write_atomic(path, lambda temporary: tifffile.imwrite(
        temporary, array, imagej=True, photometric="minisblack", metadata={"axes": "ZYX"}))
