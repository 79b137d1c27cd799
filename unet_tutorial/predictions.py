"""The one file format for saved predictions (``predict`` writes it, ``evaluate`` and the book read it).

A prediction file holds one stack of class probabilities and says which images
of its source they belong to:

* ``.npz`` (compressed numpy): ``probabilities`` (N, H, W, K) float32 in [0, 1],
  or uint8 in steps of 1/255 when saved with ``compact=True`` (the book's small
  artifacts); (N, H, W) for a single channel such as the membrane probability;
  ``slices`` (N,) int: the index of each image in its stack;
  ``metadata``: a JSON string (source, model, tta, ...).
* ``.tif``: the same probabilities as float32 pages, ``slices`` and the other
  metadata in the ImageJ/tifffile description (for Fiji users).
"""

from __future__ import annotations

import json
import pathlib
from typing import NamedTuple

import numpy as np

from .files import write_atomic

__all__ = ["Predictions", "save_predictions", "load_predictions"]

SUFFIXES = (".npz", ".tif", ".tiff")


class Predictions(NamedTuple):
    probabilities: np.ndarray  # (N, H, W, K) or (N, H, W) float32 in [0, 1]
    slices: np.ndarray | None  # (N,) index of each image in its source stack; None if the file does not say
    metadata: dict  # what made them (source, model, tta, ...)


def _check_suffix(path: pathlib.Path, verb: str) -> None:
    if path.suffix not in SUFFIXES:
        raise ValueError(f"cannot {verb} {path}: use a .npz or .tif file name.")


def save_predictions(path, probabilities, slices=None, *, compact: bool = False, **metadata) -> pathlib.Path:
    """Write a probability stack (N, H, W[, K]) to ``.npz`` or ``.tif``, atomically.

    Args:
        probabilities: values in [0, 1].
        slices: the index of each image in its source stack (default 0..N-1).
        compact: ``.npz`` only: store uint8 (rounded to 1/255), a quarter of the size.
        **metadata: JSON-serialisable facts about the prediction.
    """
    path = pathlib.Path(path)
    _check_suffix(path, "write")
    from .segments import check_probabilities  # noqa: PLC0415 (imports scipy; the CLI's options do not need it)

    probabilities = check_probabilities(probabilities)
    if probabilities.ndim == 2:
        probabilities = probabilities[None]
    slices = np.arange(len(probabilities)) if slices is None else np.asarray(slices, dtype=np.int64)
    if slices.shape != (len(probabilities),):
        raise ValueError(f"slices must name one index per image: {len(probabilities)} images, got shape {slices.shape}.")
    if path.suffix == ".npz":
        stored = np.round(probabilities * 255).astype(np.uint8) if compact else probabilities

        def write(temporary):
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, probabilities=stored, slices=slices, metadata=json.dumps(metadata))
    else:
        if compact:
            raise ValueError("compact=True is for .npz files; a .tif keeps float32 probabilities.")
        import tifffile

        def write(temporary):
            tifffile.imwrite(temporary, probabilities, compression="zlib",
                             metadata={"slices": slices.tolist(), **metadata})
    return write_atomic(path, write)


def load_predictions(path) -> Predictions:
    """Read a file written by :func:`save_predictions` (or any (N, H, W[, K]) TIFF of probabilities)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file {path} not found; write one with `python -m unet_tutorial predict`.")
    _check_suffix(path, "read")
    metadata: dict = {}
    if path.suffix == ".npz":
        with np.load(path) as data:
            if "probabilities" not in data:
                raise ValueError(f"{path} has no 'probabilities' array (keys: {sorted(data.keys())}); "
                                 "write prediction files with predictions.save_predictions.")
            probabilities = data["probabilities"]
            slices = data["slices"].astype(np.int64) if "slices" in data else None
            if "metadata" in data:
                metadata = json.loads(str(data["metadata"]))
        if probabilities.dtype == np.uint8:
            probabilities = probabilities.astype(np.float32) / 255.0
    else:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            probabilities = tif.asarray()
            described = dict((tif.shaped_metadata or ({},))[0])  # what save_predictions wrote, if it did
        slices = np.asarray(described.pop("slices"), dtype=np.int64) if "slices" in described else None
        described.pop("shape", None)  # tifffile's own entry
        metadata = described
    if probabilities.ndim == 2:
        probabilities = probabilities[None]
    if probabilities.ndim not in (3, 4):
        raise ValueError(f"{path}: expected (N, H, W) or (N, H, W, K) probabilities, got shape {probabilities.shape}.")
    from .segments import check_probabilities  # noqa: PLC0415

    return Predictions(check_probabilities(probabilities, str(path)), slices, metadata)
