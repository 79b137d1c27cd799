"""Loading the paper's datasets into numpy arrays, checked against the manifest.

* ``load_isbi2012``: the ISBI 2012 EM stacks (Sec. 4, Table 1). Labels on disk
  are 0 (membrane) and 255 (cell interior); the loader returns class indices
  ``0 = membrane, 1 = cell``.
* ``load_ctc``: the annotated frames of one Cell Tracking Challenge sequence
  (Sec. 4, Table 2) with their int32 instance masks, ``0 = background, 1..n = cells``.

Both read either a folder laid out like ``../shared/data`` (TIFF files, each
checked by sha256 or pixel fingerprint) or a folder of packed ``.npz`` files
made by ``pack_data`` (see ``packed.py``); they tell the two apart by the
file names in the folder.
"""

from __future__ import annotations

import pathlib
import re
from typing import NamedTuple

import numpy as np

from . import packed
from .manifest import (CTC_SEQUENCES, ChecksumError, DatasetNotFoundError, ImageFormatError, LabelValueError,
                       StackInfo, UnknownDatasetError, ctc_dataset_names, data_dir as resolve_data_dir,
                       dataset_info, file_sha256, manifest, missing_message, pixel_fingerprint)
from .tiff import check_image, read_tiff

__all__ = ["CTCData", "ISBI2012", "load_ctc", "load_isbi2012", "read_isbi_stack"]

# ---------------------------------------------------------------------------
# ISBI 2012.


class ISBI2012(NamedTuple):
    images: np.ndarray  # (30, 512, 512) uint8 training slices
    labels: np.ndarray  # (30, 512, 512) uint8 classes: 0 = membrane, 1 = cell interior
    test_images: np.ndarray  # (30, 512, 512) uint8 test slices (labels not public)


ISBI_FILES = {"images": "train-volume.tif", "labels": "train-labels.tif", "test_images": "test-volume.tif"}


def read_isbi_stack(path: pathlib.Path, info: StackInfo, verify: bool, is_label: bool) -> np.ndarray:
    """One ISBI stack as stored (labels 0/255), checked for shape, dtype, label values and fingerprint."""
    array = read_tiff(path)
    check_image(array, path, len(info.shape), (info.dtype,), "a stack of grey-value slices")
    if array.shape != info.shape:
        raise ImageFormatError(f"{path}: expected shape {info.shape}, got {array.shape}.")
    if is_label:
        values = np.unique(array)
        if not np.isin(values, (0, 255)).all():
            raise LabelValueError(
                f"{path}: ISBI labels must be exactly 0 (membrane) and 255 (cell); found values "
                f"{values[:10].tolist()}{' ...' if values.size > 10 else ''}. Use the original "
                "label stack (a resized or JPEG-compressed copy blurs the two classes)."
            )
    if verify:
        found = pixel_fingerprint(array)
        if found != info.pixel_sha256:
            raise ChecksumError(path, info.pixel_sha256, found, what="pixel fingerprint")
    return array


def load_isbi2012(data_dir=None, verify: bool = True) -> ISBI2012:
    """Load the ISBI 2012 training images, labels and test images.

    Args:
        data_dir: folder that holds ``isbi2012/`` (see ``data_dir()``), or a
            packed folder that holds ``isbi2012.npz`` (see ``pack_data``).
        verify: check the pixel fingerprint of each stack against the manifest
            (of a packed file: against the fingerprints recorded when it was packed).
    Returns:
        ``ISBI2012(images, labels, test_images)``, each (30, 512, 512) uint8.
        ``labels`` are class indices: 0 = membrane (0 on disk), 1 = cell
        interior (255 on disk). About 22 % of the training pixels are membrane.
    Raises:
        DatasetNotFoundError, ImageFormatError, LabelValueError, ChecksumError.
    """
    root = resolve_data_dir(data_dir)
    if packed.is_packed(root):
        return ISBI2012(**packed.read_packed_isbi2012(root, verify))
    info = dataset_info("isbi2012")
    folder = root / "isbi2012"
    arrays = {}
    for key, filename in ISBI_FILES.items():
        path = folder / filename
        if not path.is_file():
            raise DatasetNotFoundError(missing_message("isbi2012", folder, f"{filename} is missing"))
        arrays[key] = read_isbi_stack(path, info.stacks[filename], verify, key == "labels")
    arrays["labels"] = (arrays["labels"] == 255).astype(np.uint8)
    return ISBI2012(**arrays)


# ---------------------------------------------------------------------------
# Cell Tracking Challenge.


class CTCData(NamedTuple):
    images: np.ndarray  # (N, H, W) uint8: the frames that have a GT/SEG mask
    masks: np.ndarray  # (N, H, W) int32 instance labels, 0 = background, 1..n = cells
    frame_numbers: tuple[int, ...]  # N frame numbers: images[i] is frame tNNN, NNN = frame_numbers[i]
    markers: np.ndarray  # (N, H, W) int32 GT/TRA markers of the same frames, one label per cell (annotations.py)


_MASK_NAME = re.compile(r"^man_seg(\d+)\.tif$")


def _check_ctc_name(name: str) -> None:
    if name not in ctc_dataset_names():
        if name in manifest():
            raise UnknownDatasetError(
                f"{name!r} is not a Cell Tracking Challenge dataset; load_ctc takes one of "
                f"{', '.join(sorted(ctc_dataset_names()))}."
            )
        dataset_info(name)  # raises with the list of known names


def _sequence(sequence) -> str:
    """``"01"`` or ``"02"`` from a string or an int (1, 2)."""
    sequence = f"{int(sequence):02d}" if isinstance(sequence, int) else str(sequence)
    if sequence not in CTC_SEQUENCES:
        raise ValueError(f"sequence must be one of {CTC_SEQUENCES}, got {sequence!r}.")
    return sequence


def load_ctc(name: str, sequence: str = "01", data_dir=None, verify: bool = True) -> CTCData:
    """Load the annotated frames of one CTC sequence with their GT/SEG instance masks.

    Args:
        name: ``"PhC-C2DH-U373"`` or ``"DIC-C2DH-HeLa"``.
        sequence: ``"01"`` or ``"02"`` (an int 1 or 2 also works).
        data_dir: folder that holds ``<name>/`` (see ``data_dir()``), or a
            packed folder that holds ``<name>.npz`` (see ``pack_data``).
        verify: check each file read against the manifest's sha256, and that
            the sequence has all its GT/SEG masks (of a packed file: the pixel
            fingerprints recorded when it was packed).
    Returns:
        ``CTCData(images, masks, frame_numbers, markers)``: frames (N, H, W)
        uint8, masks (N, H, W) int32 and the tracking markers (N, H, W) int32,
        paired by frame number (``man_segNNN.tif`` <-> ``tNNN.tif`` <->
        ``man_trackNNN.tif``), sorted by frame number. Only frames with a mask
        are returned (the paper trains on these). Some marked cells have no
        mask: ``annotations.ignore_regions(masks, markers)`` finds them.
    """
    _check_ctc_name(name)
    info = dataset_info(name)
    sequence = _sequence(sequence)
    root = resolve_data_dir(data_dir)
    if packed.is_packed(root):
        return CTCData(*packed.read_packed_ctc(root, name, sequence, verify))
    folder = root / name
    frames_dir, masks_dir = folder / sequence, folder / f"{sequence}_GT" / "SEG"
    if not frames_dir.is_dir() or not masks_dir.is_dir():
        raise DatasetNotFoundError(
            missing_message(name, folder, f"expected folders {sequence}/ and {sequence}_GT/SEG/")
        )
    mask_paths = {}
    for path in masks_dir.iterdir():
        match = _MASK_NAME.match(path.name)
        if match:
            mask_paths[int(match.group(1))] = (path, match.group(1))
    if verify:
        expected = sorted(p for p in info.files if p.startswith(f"{sequence}_GT/SEG/"))
        found = sorted(f"{sequence}_GT/SEG/{p.name}" for p, _ in mask_paths.values())
        if found != expected:
            missing = sorted(set(expected) - set(found))
            extra = sorted(set(found) - set(expected))
            raise DatasetNotFoundError(
                f"{masks_dir}: the GT/SEG masks differ from the manifest (missing {missing[:5]}, "
                f"unexpected {extra[:5]}). Fetch the dataset again with `python -m unet_tutorial "
                f"fetch {name}`, or pass verify=False to load another release as it is."
            )
    images, masks, markers = [], [], []
    for number in sorted(mask_paths):
        mask_path, digits = mask_paths[number]
        frame_path = frames_dir / f"t{digits}.tif"
        marker_path = folder / f"{sequence}_GT" / "TRA" / f"man_track{digits}.tif"
        for path, what in ((frame_path, f"frame {frame_path.name}"),
                           (marker_path, marker_path.relative_to(folder).as_posix())):
            if not path.is_file():
                raise DatasetNotFoundError(missing_message(name, folder, f"{mask_path.name} has no {what}"))
        frame, mask, marker = read_tiff(frame_path), read_tiff(mask_path), read_tiff(marker_path)
        check_image(frame, frame_path, 2, ("uint8",), "a grey-value frame")
        for path, array in ((mask_path, mask), (marker_path, marker)):
            check_image(array, path, 2, ("uint8", "uint16", "int32", "uint32"), "an instance mask")
            if array.shape != frame.shape:
                raise ImageFormatError(
                    f"{path} has shape {array.shape} but its frame {frame_path.name} has {frame.shape}."
                )
        if verify:
            for path in (frame_path, mask_path, marker_path):
                relative = path.relative_to(folder).as_posix()
                found_hash = file_sha256(path)
                if found_hash != info.files.get(relative):
                    raise ChecksumError(path, info.files.get(relative, "(not in the manifest)"), found_hash)
        images.append(frame)
        masks.append(mask.astype(np.int32))
        markers.append(marker.astype(np.int32))
    if not images:
        raise DatasetNotFoundError(missing_message(name, folder, f"no man_segNNN.tif in {masks_dir}"))
    return CTCData(np.stack(images), np.stack(masks), tuple(sorted(mask_paths)), np.stack(markers))
