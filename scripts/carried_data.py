"""The data a device run needs, packed into compressed ``.npz`` files, and read back there.

The lent GPU machine (``/work/.library/device/README.md``) cannot see
``../shared/data`` and a call carries at most 64 MiB. Here,
:func:`pack` reads the datasets with the package's own loaders
(``datasets.load_isbi2012``, ``datasets.load_ctc``: sha256 and pixel
fingerprints checked) and writes, into a git-ignored folder that the call
carries (``.carry/data``):

* ``isbi2012.npz``: ``images``, ``labels`` (0 = membrane, 1 = cell, as the
  loader returns them) and ``test_images``, each (30, 512, 512) uint8;
* ``PhC-C2DH-U373.npz`` and ``DIC-C2DH-HeLa.npz``: for each sequence ``SS``
  (``01``, ``02``) only the annotated frames: ``images_SS`` (N, H, W) uint8,
  ``masks_SS`` (N, H, W) instance labels (stored as uint16, returned as int32)
  and ``frames_SS`` (N,) frame numbers;
* in every file ``meta``: a JSON string with the format version, the pixel
  fingerprint (``datasets.pixel_fingerprint``) of every array as the loader
  returned it, and where it came from.

There, :func:`use_carried_data` points the package at those files: it replaces
``datasets.load_isbi2012`` and ``datasets.load_ctc`` with readers of the
``.npz`` files that return the same named tuples and check the same pixel
fingerprints. ``train``, ``evaluate`` and ``predict`` look the loaders up on
the ``datasets`` module each time they load data, so they read the carried
files without any change to the package. Why not unpack the ``.npz`` back into
TIFF files? The loaders also check every Cell Tracking Challenge file's sha256,
and the original files are LZW-compressed, which needs ``imagecodecs`` (a large
compiled wheel that the device machine does not have); rewritten files would
fail those checks.

Used by ``scripts/prepare_device_run.sh`` (pack) and ``scripts/device_run.py``
(read). Tested by ``tests/test_gpu_artifacts.py``.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import numpy as np

FORMAT_VERSION = 1
ISBI_FILE = "isbi2012.npz"
CTC_NAMES = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
SEQUENCES = ("01", "02")


def _write_npz_atomic(path: pathlib.Path, arrays: dict, meta: dict) -> None:
    """``np.savez_compressed`` to a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    os.close(handle)
    try:
        with open(temporary, "wb") as file:
            np.savez_compressed(file, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def pack(data_dir=None, out_dir=".carry/data", names=("isbi2012",) + CTC_NAMES) -> dict[str, pathlib.Path]:
    """Read the datasets with the package's loaders and write one ``.npz`` per dataset to ``out_dir``.

    Args:
        data_dir: folder laid out like ``../shared/data`` (default: ``datasets.data_dir()``).
        out_dir: where the ``.npz`` files go (git-ignored; the device call carries it).
        names: which datasets to pack.
    Returns:
        ``{name: path}`` of the files written.
    """
    from unet_tutorial import datasets

    out_dir = pathlib.Path(out_dir)
    written = {}
    for name in names:
        if name == "isbi2012":
            data = datasets.load_isbi2012(data_dir)
            arrays = {field: getattr(data, field) for field in data._fields}
            fingerprints = {key: datasets.pixel_fingerprint(value) for key, value in arrays.items()}
            path = out_dir / ISBI_FILE
        elif name in CTC_NAMES:
            arrays, fingerprints = {}, {}
            for sequence in SEQUENCES:
                data = datasets.load_ctc(name, sequence, data_dir)
                if data.masks.min() < 0 or data.masks.max() > np.iinfo(np.uint16).max:
                    raise ValueError(f"{name} {sequence}: instance labels outside 0..65535 cannot be stored as uint16.")
                arrays[f"images_{sequence}"] = data.images
                arrays[f"masks_{sequence}"] = data.masks.astype(np.uint16)
                arrays[f"frames_{sequence}"] = np.asarray(data.frame_numbers, dtype=np.int32)
                fingerprints[f"images_{sequence}"] = datasets.pixel_fingerprint(data.images)
                fingerprints[f"masks_{sequence}"] = datasets.pixel_fingerprint(data.masks)  # as int32, as loaded
            path = out_dir / f"{name}.npz"
        else:
            raise ValueError(f"cannot pack {name!r}; choose from {('isbi2012',) + CTC_NAMES}.")
        meta = {"format": FORMAT_VERSION, "dataset": name, "fingerprints": fingerprints,
                "source": f"unet_tutorial.datasets loaders reading {datasets.data_dir(data_dir)}"}
        _write_npz_atomic(path, arrays, meta)
        written[name] = path
    return written


def _open(folder: pathlib.Path, filename: str, name: str):
    """(arrays, meta) of one packed file, with clear errors for a missing or foreign file."""
    from unet_tutorial import datasets

    path = pathlib.Path(folder) / filename
    if not path.is_file():
        raise datasets.DatasetNotFoundError(
            f"carried dataset {name!r} not found: {path} is missing. Make it with "
            "`bash scripts/prepare_device_run.sh` (it packs ../shared/data into .carry/data)."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:  # a truncated zip, a missing key, bad JSON
        raise datasets.ImageFormatError(f"{path} is not a readable packed dataset ({type(error).__name__}: {error}).") from error
    if meta.get("format") != FORMAT_VERSION or meta.get("dataset") != name:
        raise ValueError(
            f"{path} holds format {meta.get('format')!r} of {meta.get('dataset')!r}; expected format "
            f"{FORMAT_VERSION} of {name!r}. Pack it again with scripts/prepare_device_run.sh."
        )
    return path, arrays, meta


def _verified(path, meta: dict, key: str, array: np.ndarray, verify: bool) -> np.ndarray:
    if verify:
        from unet_tutorial import datasets

        expected = meta["fingerprints"].get(key)
        found = datasets.pixel_fingerprint(array)
        if found != expected:
            raise datasets.ChecksumError(f"{path}[{key}]", expected, found, what="pixel fingerprint")
    return array


def load_isbi2012_npz(folder, verify: bool = True):
    """``datasets.ISBI2012`` from ``folder/isbi2012.npz`` (the arrays ``datasets.load_isbi2012`` returned)."""
    from unet_tutorial import datasets

    path, arrays, meta = _open(folder, ISBI_FILE, "isbi2012")
    return datasets.ISBI2012(**{field: _verified(path, meta, field, arrays[field], verify)
                                for field in datasets.ISBI2012._fields})


def load_ctc_npz(folder, name: str, sequence="01", verify: bool = True):
    """``datasets.CTCData`` of one sequence from ``folder/<name>.npz`` (annotated frames only)."""
    from unet_tutorial import datasets

    if name not in CTC_NAMES:
        raise datasets.UnknownDatasetError(f"{name!r} is not a carried Cell Tracking Challenge dataset; use one of {CTC_NAMES}.")
    sequence = f"{int(sequence):02d}" if isinstance(sequence, int) else str(sequence)
    if sequence not in SEQUENCES:
        raise ValueError(f"sequence must be one of {SEQUENCES}, got {sequence!r}.")
    path, arrays, meta = _open(folder, f"{name}.npz", name)
    images = _verified(path, meta, f"images_{sequence}", arrays[f"images_{sequence}"], verify)
    masks = _verified(path, meta, f"masks_{sequence}", arrays[f"masks_{sequence}"].astype(np.int32), verify)
    return datasets.CTCData(images, masks, tuple(int(n) for n in arrays[f"frames_{sequence}"]))


def use_carried_data(folder) -> None:
    """Make ``datasets.load_isbi2012`` and ``datasets.load_ctc`` read the packed files in ``folder``.

    Their ``data_dir`` argument is ignored from then on (the carried files are
    the only data on the device machine); ``verify`` checks the pixel fingerprints.
    """
    from unet_tutorial import datasets

    folder = pathlib.Path(folder).resolve()
    if not (folder / ISBI_FILE).is_file():
        raise datasets.DatasetNotFoundError(
            f"no carried data in {folder} ({ISBI_FILE} is missing); run `bash scripts/prepare_device_run.sh` "
            "here and name .carry in the device call's carry list."
        )

    def load_isbi2012(data_dir=None, verify: bool = True):
        return load_isbi2012_npz(folder, verify)

    def load_ctc(name, sequence="01", data_dir=None, verify: bool = True):
        return load_ctc_npz(folder, name, sequence, verify)

    load_isbi2012.__doc__ = f"datasets.load_isbi2012, reading the carried {folder / ISBI_FILE}."
    load_ctc.__doc__ = f"datasets.load_ctc, reading the carried files in {folder}."
    datasets.load_isbi2012 = load_isbi2012
    datasets.load_ctc = load_ctc


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Pack ISBI-2012 and the annotated CTC frames into .npz files.")
    parser.add_argument("--data-dir", default=None, help="folder laid out like ../shared/data")
    parser.add_argument("--out", default=".carry/data", help="where the .npz files go (default .carry/data)")
    args = parser.parse_args()
    for dataset, file in pack(args.data_dir, args.out).items():
        print(f"packed {dataset}: {file} ({file.stat().st_size / 2**20:.1f} MiB)")
