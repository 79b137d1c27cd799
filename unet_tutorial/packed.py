"""The packed form of the datasets: one compressed ``.npz`` file per dataset, read back by the loaders.

A machine that cannot see the TIFF files (the lent GPU machine: no
``../shared/data``, at most 64 MiB per call, no ``imagecodecs`` for the LZW
files) gets the data as the loaders return them, packed by ``pack_data``:

* ``isbi2012.npz``: ``images``, ``labels`` (0 = membrane, 1 = cell, as
  ``load_isbi2012`` returns them) and ``test_images``, each (30, 512, 512) uint8;
* ``PhC-C2DH-U373.npz`` and ``DIC-C2DH-HeLa.npz``: for each sequence ``SS``
  (``01``, ``02``) only the annotated frames: ``images_SS`` (N, H, W) uint8,
  ``masks_SS`` (N, H, W) instance labels and ``markers_SS`` (N, H, W) tracking
  markers (both stored as uint16, returned as int32) and ``frames_SS`` (N,)
  frame numbers;
* in every file ``meta``: a JSON string with the format version, the pixel
  fingerprint (``pixel_fingerprint``) of every array as the loader returned
  it, and where it came from.

``load_isbi2012(folder)`` and ``load_ctc(name, sequence, folder)`` read such a
folder themselves (they recognise it by these file names) and check the same
fingerprints, so code that loads data needs no change to run on packed data.
Why not unpack back into TIFF files? The loaders check every Cell Tracking
Challenge file's sha256, and rewritten (or uncompressed) files would fail it.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from .files import write_atomic
from .manifest import (CTC_SEQUENCES, ChecksumError, DatasetNotFoundError, ImageFormatError,
                       ctc_dataset_names, data_dir as resolve_data_dir, dataset_names, pixel_fingerprint)

__all__ = ["FORMAT_VERSION", "is_packed", "pack_data", "packed_path", "read_packed_ctc", "read_packed_isbi2012"]

FORMAT_VERSION = 1
ISBI_FIELDS = ("images", "labels", "test_images")  # the fields of loaders.ISBI2012


def packed_path(folder, name: str) -> pathlib.Path:
    """Where dataset ``name`` lies in a packed folder: ``folder/<name>.npz``."""
    return pathlib.Path(folder) / f"{name}.npz"


def is_packed(folder) -> bool:
    """Whether ``folder`` is a packed folder (holds ``<name>.npz`` of some dataset of the manifest)."""
    return any(packed_path(folder, name).is_file() for name in dataset_names())


# ---------------------------------------------------------------------------
# Writing.


def _write(path: pathlib.Path, name: str, arrays: dict, source: str) -> pathlib.Path:
    """One packed file: ``arrays`` as stored plus ``meta`` (format, fingerprints, source)."""
    fingerprints = {key: pixel_fingerprint(value) for key, value in arrays.items()}
    if name in ctc_dataset_names():  # masks are fingerprinted as loaded (int32), stored as uint16
        for key, value in list(arrays.items()):
            if key.startswith(("masks_", "markers_")):
                if value.min() < 0 or value.max() > np.iinfo(np.uint16).max:
                    raise ValueError(f"{name} {key}: instance labels outside 0..65535 cannot be stored as uint16.")
                arrays[key] = value.astype(np.uint16)
    meta = {"format": FORMAT_VERSION, "dataset": name, "fingerprints": fingerprints, "source": source}
    return write_atomic(path, lambda temporary: np.savez_compressed(
        temporary, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays))


def pack_data(data_dir=None, out_dir=".carry/data", names=None) -> dict[str, pathlib.Path]:
    """Read datasets with the package's loaders and write one ``.npz`` per dataset to ``out_dir``.

    The loaders check sha256 and pixel fingerprints on the way in; the packed
    files record the fingerprints of what they returned.

    Args:
        data_dir: folder laid out like ``../shared/data`` (default: ``data_dir()``).
        out_dir: where the ``.npz`` files go (``.carry/data`` is git-ignored; the device call carries it).
        names: which datasets to pack (default: all of the manifest).
    Returns:
        ``{name: path}`` of the files written.
    """
    from .loaders import load_ctc, load_isbi2012  # noqa: PLC0415 (the loaders import this module)

    names = dataset_names() if names is None else tuple(names)
    source = f"unet_tutorial loaders reading {resolve_data_dir(data_dir)}"
    written = {}
    for name in names:
        if name == "isbi2012":
            data = load_isbi2012(data_dir)
            arrays = {field: getattr(data, field) for field in ISBI_FIELDS}
        elif name in ctc_dataset_names():
            arrays = {}
            for sequence in CTC_SEQUENCES:
                data = load_ctc(name, sequence, data_dir)
                arrays[f"images_{sequence}"] = data.images
                arrays[f"masks_{sequence}"] = data.masks
                arrays[f"markers_{sequence}"] = data.markers
                arrays[f"frames_{sequence}"] = np.asarray(data.frame_numbers, dtype=np.int32)
        else:
            raise ValueError(f"cannot pack {name!r}; choose from {dataset_names()}.")
        written[name] = _write(packed_path(out_dir, name), name, arrays, source)
    return written


# ---------------------------------------------------------------------------
# Reading.


def _open(folder, name: str) -> tuple[pathlib.Path, dict, dict]:
    """(path, arrays, meta) of one packed file, with clear errors for a missing or foreign file."""
    path = packed_path(folder, name)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"packed dataset {name!r} not found: {pathlib.Path(folder)} is a folder of packed .npz files "
            f"but {path.name} is missing. Pack it with datasets.pack_data(out_dir=...) "
            "(`bash scripts/prepare_device_run.sh` packs ../shared/data into .carry/data)."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:  # a truncated zip, a missing key, bad JSON
        raise ImageFormatError(
            f"{path} is not a readable packed dataset ({type(error).__name__}: {error}). Pack it again."
        ) from error
    if meta.get("format") != FORMAT_VERSION or meta.get("dataset") != name:
        raise ValueError(
            f"{path} holds format {meta.get('format')!r} of {meta.get('dataset')!r}; expected format "
            f"{FORMAT_VERSION} of {name!r}. Pack it again with datasets.pack_data."
        )
    return path, arrays, meta


def _array(path: pathlib.Path, arrays: dict, meta: dict, key: str, verify: bool, dtype=None) -> np.ndarray:
    """``arrays[key]`` (as ``dtype``), checked against its recorded pixel fingerprint."""
    if key not in arrays:
        raise ImageFormatError(f"{path} has no array {key!r}; pack it again with datasets.pack_data.")
    array = arrays[key] if dtype is None else arrays[key].astype(dtype)
    if verify:
        expected = meta.get("fingerprints", {}).get(key)
        found = pixel_fingerprint(array)
        if found != expected:
            raise ChecksumError(f"{path}[{key}]", expected, found, what="pixel fingerprint",
                                remedy="pack it again with datasets.pack_data")
    return array


def read_packed_isbi2012(folder, verify: bool = True) -> dict[str, np.ndarray]:
    """``{"images", "labels", "test_images"}`` from ``folder/isbi2012.npz``, as ``load_isbi2012`` returns them."""
    path, arrays, meta = _open(folder, "isbi2012")
    return {field: _array(path, arrays, meta, field, verify) for field in ISBI_FIELDS}


def read_packed_ctc(folder, name: str, sequence: str, verify: bool = True):
    """``(images, masks, frame_numbers, markers)`` of one sequence from ``folder/<name>.npz`` (annotated frames only)."""
    path, arrays, meta = _open(folder, name)
    images = _array(path, arrays, meta, f"images_{sequence}", verify)
    masks = _array(path, arrays, meta, f"masks_{sequence}", verify, dtype=np.int32)
    frames = _array(path, arrays, meta, f"frames_{sequence}", verify=False)
    markers = _array(path, arrays, meta, f"markers_{sequence}", verify, dtype=np.int32)
    return images, masks, tuple(int(n) for n in frames), markers
