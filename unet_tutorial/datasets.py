"""The paper's three datasets: where they come from, how to get them, how to read them.

Ronneberger et al. 2015 train and evaluate U-Net on three datasets:

* ``isbi2012``: the ISBI 2012 EM segmentation challenge (Sec. 4, Table 1),
  30 training slices of 512x512 with membrane labels, 30 test slices.
* ``PhC-C2DH-U373`` and ``DIC-C2DH-HeLa``: two Cell Tracking Challenge (CTC)
  sets (Sec. 4, Table 2), short videos where some frames have a manual
  instance segmentation (``man_segNNN.tif`` belongs to frame ``tNNN.tif``).

The manifest (``unet_tutorial/manifest.json``, read into the frozen
dataclasses below) pins every file by sha256 and keeps the licence terms and
the citations. ``fetch(name)`` checks a local copy or downloads the data with
``pooch``; ``load_isbi2012()`` and ``load_ctc()`` return numpy arrays.

Conventions (shared by the whole package):

* ISBI labels on disk are 0 (membrane) and 255 (cell interior);
  ``load_isbi2012`` returns class indices ``0 = membrane, 1 = cell``.
* CTC masks are int32 instance labels, ``0 = background, 1..n = cells``.

The ISBI stacks here may have other TIFF container bytes than the ones the
challenge distributed (a copy rebuilt from lossless per-slice PNGs, or the
ImageJ mirror's files), so the loader checks a fingerprint of the *decoded
pixels* (``pixel_fingerprint``), not of the file bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
import zipfile
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import tifffile

__all__ = [
    "ChecksumError", "CTCData", "DatasetInfo", "DatasetNotFoundError", "DownloadError",
    "ISBI2012", "ImageFormatError", "LabelValueError", "SegmentationDataset",
    "UnknownDatasetError", "UnsafeArchiveError", "data_dir", "dataset_info", "download_file",
    "fetch", "file_sha256", "load_ctc", "load_isbi2012", "manifest", "pixel_fingerprint",
    "read_tiff", "safe_extract_zip", "verify_local",
]

# ---------------------------------------------------------------------------
# Errors. Each subclasses the built-in exception a caller would expect, so
# ``except FileNotFoundError`` or ``except ValueError`` keep working.


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or one of its files) is not where the loader looked."""


class UnknownDatasetError(ValueError):
    """A dataset name that is not in the manifest."""


class ChecksumError(ValueError):
    """A file (or its decoded pixels) does not have the pinned sha256."""

    def __init__(self, path, expected, found, what="sha256"):
        self.path, self.expected, self.found = str(path), expected, found
        expected_text = " or ".join(expected) if isinstance(expected, (list, tuple)) else expected
        super().__init__(
            f"{what} mismatch for {path}: expected {expected_text}, found {found}. "
            "The file is corrupted, truncated or a different version; delete it and "
            "run `python -m unet_tutorial fetch` again."
        )


class ImageFormatError(ValueError):
    """A file that is not a readable TIFF, or an image of the wrong shape or type."""


class LabelValueError(ValueError):
    """A label image with values other than the expected classes."""


class UnsafeArchiveError(ValueError):
    """An archive member that would be written outside the target folder."""


class DownloadError(OSError):
    """A download failed (network error or HTTP error) after all retries."""


# ---------------------------------------------------------------------------
# The manifest.


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    path: str  # URL path relative to the source's base_url
    sha256: tuple[str, ...]  # accepted sha256 values; empty = content checked after unpacking
    target: str = ""  # where it lands, relative to the dataset folder ("" for archives)


@dataclasses.dataclass(frozen=True)
class Source:
    name: str  # key in the manifest, e.g. "github-slices"
    description: str  # what it is, in one or two sentences
    base_url: str  # canonical base URL; UNET_TUTORIAL_BASE_URL replaces it
    files: tuple[RemoteFile, ...] = ()  # single files, each pinned by sha256
    archives: tuple[RemoteFile, ...] = ()  # zip archives, unpacked into the dataset folder


@dataclasses.dataclass(frozen=True)
class StackInfo:
    shape: tuple[int, ...]  # (slices, rows, cols)
    dtype: str  # numpy dtype name on disk
    pixel_sha256: str  # pixel_fingerprint() of the decoded array
    sha256: str  # sha256 of the file bytes of our reference copy (fast path)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str  # folder name, as in ../shared/data
    title: str  # what the data are
    homepage: str  # where a reader learns more
    license: str  # terms of use (summary)
    citation: tuple[str, ...]  # references to cite when using the data
    default_source: str  # the source fetch() uses unless told otherwise
    sources: Mapping[str, Source]  # ways to download it
    files: Mapping[str, str]  # relative path -> sha256 of files the loaders read (CTC)
    stacks: Mapping[str, StackInfo]  # ISBI stacks, checked by pixel fingerprint
    gt_seg_counts: Mapping[str, int]  # CTC: number of GT/SEG masks per sequence


_MANIFEST_PATH = pathlib.Path(__file__).with_name("manifest.json")
_BASE_URL_ENV = "UNET_TUTORIAL_BASE_URL"
_DATA_ENV = "UNET_TUTORIAL_DATA"
_CTC_SEQUENCES = ("01", "02")
_log = logging.getLogger(__name__)


def _as_tuple(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@functools.lru_cache(maxsize=None)
def manifest() -> Mapping[str, DatasetInfo]:
    """All datasets of the manifest, by name (read once from ``manifest.json``)."""
    raw = json.loads(_MANIFEST_PATH.read_text(encoding="utf-8"))
    datasets = {}
    for name, entry in raw["datasets"].items():
        sources = {
            key: Source(
                name=key,
                description=src["description"],
                base_url=src["base_url"],
                files=tuple(RemoteFile(f["path"], _as_tuple(f["sha256"]), f.get("target", ""))
                            for f in src.get("files", [])),
                archives=tuple(RemoteFile(a["path"], _as_tuple(a["sha256"]))
                               for a in src.get("archives", [])),
            )
            for key, src in entry["sources"].items()
        }
        stacks = {
            key: StackInfo(tuple(s["shape"]), s["dtype"], s["pixel_sha256"], s["sha256"])
            for key, s in entry.get("stacks", {}).items()
        }
        datasets[name] = DatasetInfo(
            name=name,
            title=entry["title"],
            homepage=entry["homepage"],
            license=entry["license"],
            citation=tuple(entry["citation"]),
            default_source=entry["default_source"],
            sources=sources,
            files=dict(entry.get("files", {})),
            stacks=stacks,
            gt_seg_counts=dict(entry.get("gt_seg_counts", {})),
        )
    return datasets


def dataset_info(name: str) -> DatasetInfo:
    """The manifest entry of dataset ``name``; raises ``UnknownDatasetError`` listing the known ones."""
    known = manifest()
    if name not in known:
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(sorted(known))}."
        )
    return known[name]


# ---------------------------------------------------------------------------
# Where data live.


def _resolve_data_dir(data_dir=None) -> pathlib.Path:
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    configured = os.environ.get(_DATA_ENV)
    if configured:
        return pathlib.Path(configured).expanduser()
    checkout = pathlib.Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"  # running from a clone: downloads land in data/ (git-ignored)
    import pooch

    return pathlib.Path(pooch.os_cache("unet_tutorial"))


def data_dir(data_dir=None) -> pathlib.Path:
    """The folder that holds the datasets, one sub-folder each (layout of ``../shared/data``).

    Args:
        data_dir: a folder given by the caller; wins over everything else.
    Returns:
        ``data_dir`` if given, else ``$UNET_TUTORIAL_DATA`` if set, else ``data/``
        of the repository when running from a checkout, else the OS cache folder
        (``pooch.os_cache("unet_tutorial")``).
    """
    return _resolve_data_dir(data_dir)


def _missing_message(name: str, folder: pathlib.Path, detail: str = "") -> str:
    return (
        f"Dataset {name!r} not found at {folder}{': ' + detail if detail else ''}. "
        f"Get it with `python -m unet_tutorial fetch {name}` (or datasets.fetch({name!r})), "
        f"or set {_DATA_ENV} (or pass data_dir=) to a folder laid out like ../shared/data."
    )


# ---------------------------------------------------------------------------
# Fingerprints.


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pixel_fingerprint(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order pixel bytes.

    Two TIFF files with different container bytes (compression, tags, strip
    layout) but the same decoded pixels have the same fingerprint; one changed
    pixel changes it.
    """
    array = np.asarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}|{'x'.join(map(str, array.shape))}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Reading TIFF files with clear errors.


class _Collect(logging.Handler):
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


def _check_image(array: np.ndarray, path, ndim: int, dtypes: Sequence[str], what: str) -> None:
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


# ---------------------------------------------------------------------------
# ISBI 2012.


class ISBI2012(NamedTuple):
    images: np.ndarray  # (30, 512, 512) uint8 training slices
    labels: np.ndarray  # (30, 512, 512) uint8 classes: 0 = membrane, 1 = cell interior
    test_images: np.ndarray  # (30, 512, 512) uint8 test slices (labels not public)


_ISBI_FILES = {"images": "train-volume.tif", "labels": "train-labels.tif", "test_images": "test-volume.tif"}


def _read_isbi_stack(path: pathlib.Path, info: StackInfo, verify: bool, is_label: bool) -> np.ndarray:
    array = read_tiff(path)
    _check_image(array, path, len(info.shape), (info.dtype,), "a stack of grey-value slices")
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
        data_dir: folder that holds ``isbi2012/`` (see ``data_dir()``).
        verify: check the pixel fingerprint of each stack against the manifest.
    Returns:
        ``ISBI2012(images, labels, test_images)``, each (30, 512, 512) uint8.
        ``labels`` are class indices: 0 = membrane (0 on disk), 1 = cell
        interior (255 on disk). About 22 % of the training pixels are membrane.
    Raises:
        DatasetNotFoundError, ImageFormatError, LabelValueError, ChecksumError.
    """
    info = dataset_info("isbi2012")
    folder = _resolve_data_dir(data_dir) / "isbi2012"
    arrays = {}
    for key, filename in _ISBI_FILES.items():
        path = folder / filename
        if not path.is_file():
            raise DatasetNotFoundError(_missing_message("isbi2012", folder, f"{filename} is missing"))
        arrays[key] = _read_isbi_stack(path, info.stacks[filename], verify, key == "labels")
    arrays["labels"] = (arrays["labels"] == 255).astype(np.uint8)
    return ISBI2012(**arrays)


# ---------------------------------------------------------------------------
# Cell Tracking Challenge.


class CTCData(NamedTuple):
    images: np.ndarray  # (N, H, W) uint8: the frames that have a GT/SEG mask
    masks: np.ndarray  # (N, H, W) int32 instance labels, 0 = background, 1..n = cells
    frame_numbers: tuple[int, ...]  # N frame numbers: images[i] is frame tNNN, NNN = frame_numbers[i]


_MASK_NAME = re.compile(r"^man_seg(\d+)\.tif$")


def _ctc_names() -> list[str]:
    return sorted(name for name, info in manifest().items() if info.gt_seg_counts)


def load_ctc(name: str, sequence: str = "01", data_dir=None, verify: bool = True) -> CTCData:
    """Load the annotated frames of one CTC sequence with their GT/SEG instance masks.

    Args:
        name: ``"PhC-C2DH-U373"`` or ``"DIC-C2DH-HeLa"``.
        sequence: ``"01"`` or ``"02"`` (an int 1 or 2 also works).
        data_dir: folder that holds ``<name>/`` (see ``data_dir()``).
        verify: check each file read against the manifest's sha256, and that
            the sequence has all its GT/SEG masks.
    Returns:
        ``CTCData(images, masks, frame_numbers)``: frames (N, H, W) uint8 and
        masks (N, H, W) int32, paired by frame number (``man_segNNN.tif`` <->
        ``tNNN.tif``), sorted by frame number. Only frames with a mask are
        returned (the paper trains on these; some cells in a mask may be unlabelled).
    """
    if name not in _ctc_names():
        if name in manifest():
            raise UnknownDatasetError(
                f"{name!r} is not a Cell Tracking Challenge dataset; load_ctc takes one of "
                f"{', '.join(_ctc_names())}."
            )
        dataset_info(name)  # raises with the list of known names
    info = dataset_info(name)
    sequence = f"{int(sequence):02d}" if isinstance(sequence, int) else str(sequence)
    if sequence not in _CTC_SEQUENCES:
        raise ValueError(f"sequence must be one of {_CTC_SEQUENCES}, got {sequence!r}.")
    folder = _resolve_data_dir(data_dir) / name
    frames_dir, masks_dir = folder / sequence, folder / f"{sequence}_GT" / "SEG"
    if not frames_dir.is_dir() or not masks_dir.is_dir():
        raise DatasetNotFoundError(
            _missing_message(name, folder, f"expected folders {sequence}/ and {sequence}_GT/SEG/")
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
    images, masks = [], []
    for number in sorted(mask_paths):
        mask_path, digits = mask_paths[number]
        frame_path = frames_dir / f"t{digits}.tif"
        if not frame_path.is_file():
            raise DatasetNotFoundError(
                _missing_message(name, folder, f"{mask_path.name} has no frame {frame_path.name}")
            )
        frame, mask = read_tiff(frame_path), read_tiff(mask_path)
        _check_image(frame, frame_path, 2, ("uint8",), "a grey-value frame")
        _check_image(mask, mask_path, 2, ("uint8", "uint16", "int32", "uint32"), "an instance mask")
        if mask.shape != frame.shape:
            raise ImageFormatError(
                f"{mask_path} has shape {mask.shape} but its frame {frame_path.name} has {frame.shape}."
            )
        if verify:
            for path in (frame_path, mask_path):
                relative = path.relative_to(folder).as_posix()
                found_hash = file_sha256(path)
                if found_hash != info.files.get(relative):
                    raise ChecksumError(path, info.files.get(relative, "(not in the manifest)"), found_hash)
        images.append(frame)
        masks.append(mask.astype(np.int32))
    if not images:
        raise DatasetNotFoundError(_missing_message(name, folder, f"no man_segNNN.tif in {masks_dir}"))
    return CTCData(np.stack(images), np.stack(masks), tuple(sorted(mask_paths)))


# ---------------------------------------------------------------------------
# Download.


def download_file(url: str, destination, sha256=(), progress: bool = True, retries: int = 3,
                  timeout: float = 60.0) -> pathlib.Path:
    """Download ``url`` to ``destination``; the file appears there only once verified.

    The bytes go to a temporary file in the destination folder; it is checked
    against ``sha256`` (a hex string or a sequence of accepted ones; empty =
    no check) and then moved into place with ``os.replace``. On any failure the
    temporary file is removed, so no partial file is left behind.

    Raises:
        ChecksumError: names the file, the expected and the found hash.
        DownloadError: network or HTTP error after ``retries`` attempts.
    """
    import pooch
    import requests

    accepted = _as_tuple(sha256) if sha256 else ()
    destination = pathlib.Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part",
                                         dir=destination.parent)
    os.close(handle)
    try:
        for attempt in range(1, retries + 1):
            try:
                downloader = pooch.HTTPDownloader(progressbar=progress, chunk_size=1 << 16, timeout=timeout)
                downloader(url, temporary, None)
                break
            except requests.RequestException as error:
                status = getattr(getattr(error, "response", None), "status_code", None)
                if attempt == retries or (status is not None and 400 <= status < 500):
                    raise DownloadError(
                        f"Could not download {url} (attempt {attempt} of {retries}): {error}"
                    ) from error
                time.sleep(0.5 * attempt)
        found = file_sha256(temporary)
        if accepted and found not in accepted:
            raise ChecksumError(f"{destination.name} (downloaded from {url})", list(accepted), found)
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return destination


def safe_extract_zip(archive, target) -> list[pathlib.Path]:
    """Unpack a zip archive into ``target``, refusing members that would land outside it.

    Every member is checked before anything is written: an absolute path, a
    ``..`` component that climbs out of ``target`` ("zip slip") or a symbolic
    link raises ``UnsafeArchiveError`` and nothing is extracted.

    Returns:
        The paths of the extracted files.
    """
    target = pathlib.Path(target).resolve()
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"{archive} is not a zip archive (truncated or an error page?); "
                         "delete it and fetch again.")
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for member in zf.infolist():
            name = member.filename.replace("\\", "/")
            destination = (target / name).resolve()
            is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
            if (name.startswith("/") or re.match(r"^[A-Za-z]:", name) or is_link
                    or not destination.is_relative_to(target)):
                raise UnsafeArchiveError(
                    f"Refusing to unpack {archive}: member {member.filename!r} would be written "
                    f"outside {target} (absolute path, '..' or link). The archive is damaged or "
                    "malicious; nothing was extracted."
                )
            plan.append((member, destination))
        # Write exactly the checked paths (zipfile.extractall would rewrite names itself).
        written = []
        for member, destination in plan:
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
            except zipfile.BadZipFile as error:  # e.g. a CRC error in a damaged member
                raise ValueError(f"{archive}: member {member.filename!r} is damaged ({error}).") from error
            written.append(destination)
    return written


def _base_url(source: Source, base_url) -> str:
    url = base_url or os.environ.get(_BASE_URL_ENV) or source.base_url
    return url.rstrip("/") + "/"


def verify_local(name: str, data_dir=None) -> pathlib.Path:
    """Check a local copy of dataset ``name`` against the manifest; return its folder.

    ISBI stacks: sha256 of the file, or else the pixel fingerprint. CTC: every
    frame and GT/SEG mask listed in the manifest exists and has its sha256.
    """
    info = dataset_info(name)
    folder = _resolve_data_dir(data_dir) / name
    if not folder.is_dir():
        raise DatasetNotFoundError(_missing_message(name, folder))
    for filename, stack in info.stacks.items():
        path = folder / filename
        if not path.is_file():
            raise DatasetNotFoundError(_missing_message(name, folder, f"{filename} is missing"))
        if file_sha256(path) != stack.sha256:
            _read_isbi_stack(path, stack, True, filename == "train-labels.tif")
    missing = [p for p in info.files if not (folder / p).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{folder} holds an incomplete copy of {name!r}: {len(missing)} files missing, e.g. "
            f"{missing[:3]}. Move the folder away and run `python -m unet_tutorial fetch {name}` "
            f"again, or point {_DATA_ENV} (or data_dir=) to a complete copy."
        )
    for relative, expected in info.files.items():
        found = file_sha256(folder / relative)
        if found != expected:
            raise ChecksumError(folder / relative, expected, found)
    return folder


def _has_local_copy(info: DatasetInfo, folder: pathlib.Path) -> bool:
    if info.stacks:
        return all((folder / f).is_file() for f in info.stacks)
    return any((folder / s).is_dir() for s in _CTC_SEQUENCES)


def fetch(name: str, data_dir=None, progress: bool = True, *, source: str | None = None,
          base_url: str | None = None) -> pathlib.Path:
    """Make dataset ``name`` available locally and return its folder.

    If ``data_dir()/name`` already holds the dataset (a local mirror laid out
    like ``../shared/data``, or an earlier download) it is verified and
    returned without any network access. Otherwise it is downloaded from
    ``source`` (default: the manifest's ``default_source``) into that folder:
    every file is hash-checked before it is moved into place and archives are
    unpacked with ``safe_extract_zip``.

    Args:
        name: a dataset of the manifest (``isbi2012``, ``PhC-C2DH-U373``, ``DIC-C2DH-HeLa``).
        data_dir: see ``data_dir()``.
        progress: show tqdm progress bars.
        source: a key of the dataset's ``sources`` in the manifest.
        base_url: replaces the source's base URL (else ``$UNET_TUTORIAL_BASE_URL``);
            file paths below it stay as in the manifest. Used by the tests to
            download from a local HTTP server.
    """
    info = dataset_info(name)
    root = _resolve_data_dir(data_dir)
    folder = root / name
    if _has_local_copy(info, folder):
        return verify_local(name, root)
    if folder.exists() and any(folder.iterdir()) and not info.stacks:
        raise DatasetNotFoundError(
            f"{folder} exists but does not hold a complete copy of {name!r}; move it away "
            "and run fetch again."
        )
    source_name = source or info.default_source
    if source_name not in info.sources:
        raise ValueError(f"Unknown source {source_name!r} for {name}; choose one of {sorted(info.sources)}.")
    chosen = info.sources[source_name]
    url = _base_url(chosen, base_url)
    if chosen.files:
        _fetch_files(info, chosen, url, folder, progress)
    for archive in chosen.archives:
        _fetch_archive(info, archive, url, root, folder, progress)
    return verify_local(name, root)


def _fetch_files(info: DatasetInfo, source: Source, url: str, folder: pathlib.Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    for remote in tqdm(source.files, desc=f"{info.name}", unit="file", disable=not progress):
        destination = folder / remote.target
        if destination.is_file() and file_sha256(destination) in remote.sha256:
            continue  # an earlier, interrupted fetch already got this one
        download_file(url + remote.path, destination, remote.sha256, progress=False)
    if info.stacks:
        _build_isbi_stacks(info, folder)


def _build_isbi_stacks(info: DatasetInfo, folder: pathlib.Path) -> None:
    """Stack the per-slice PNGs into the three 30-page TIFFs, checked by pixel fingerprint."""
    from PIL import Image

    for filename, stack in info.stacks.items():
        slice_dir = folder / "slices" / filename.removesuffix(".tif")
        array = np.stack([np.asarray(Image.open(slice_dir / f"{i}.png")) for i in range(stack.shape[0])])
        found = pixel_fingerprint(array)
        if found != stack.pixel_sha256:
            raise ChecksumError(slice_dir, stack.pixel_sha256, found, what="pixel fingerprint")
        _write_tiff_atomic(folder / filename, array)


def _write_tiff_atomic(path: pathlib.Path, array: np.ndarray) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    try:
        tifffile.imwrite(temporary, array, imagej=True, photometric="minisblack", metadata={"axes": "ZYX"})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _fetch_archive(info: DatasetInfo, archive: RemoteFile, url: str, root: pathlib.Path,
                   folder: pathlib.Path, progress: bool) -> None:
    """Download one zip, unpack it next to ``folder`` and move the dataset into place."""
    root.mkdir(parents=True, exist_ok=True)
    # The archive's own hash is not the gate: CTC re-issues its zips (and the
    # ImageJ zip's hash is not known here), so a zip with an unlisted hash is
    # accepted when every file inside that the manifest pins matches.
    zip_path = download_file(url + archive.path, root / pathlib.PurePosixPath(archive.path).name,
                             (), progress=progress)
    zip_hash = file_sha256(zip_path)
    if zip_hash not in archive.sha256:
        _log.info("%s has sha256 %s, not a listed release; checking its content file by file.",
                  archive.path, zip_hash)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{info.name}.", dir=root))
    try:
        safe_extract_zip(zip_path, staging)
        if info.stacks:  # ISBI zip: find the three stacks wherever they are inside
            folder.mkdir(parents=True, exist_ok=True)
            for filename, stack in info.stacks.items():
                found = sorted(staging.rglob(filename))
                if not found:
                    raise DatasetNotFoundError(f"{archive.path} does not contain {filename}.")
                _read_isbi_stack(found[0], stack, True, filename == "train-labels.tif")
                os.replace(found[0], folder / filename)
        else:  # CTC zip: the folder that holds 01/ is the dataset
            tops = [p.parent for p in staging.rglob("01") if p.is_dir() and p.parent.name != "01"]
            if not tops:
                raise DatasetNotFoundError(f"{archive.path} has no sequence folder 01/.")
            top = min(tops, key=lambda p: len(p.parts))
            for relative, expected in info.files.items():
                path = top / relative
                if not path.is_file():
                    raise DatasetNotFoundError(f"{archive.path} does not contain {relative}.")
                found_hash = file_sha256(path)
                if found_hash != expected:
                    raise ChecksumError(f"{relative} in {archive.path}", expected, found_hash)
            os.replace(top, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        zip_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Command line: python -m unet_tutorial fetch NAME [--data-dir DIR]


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(manifest()), help="dataset to fetch")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"folder for the datasets (default: ${_DATA_ENV}, else data/ of the checkout or the OS cache)")
    sources = sorted({key for info in manifest().values() for key in info.sources})
    parser.add_argument("--source", default=None, choices=sources,
                        help="where to download from (default: isbi2012 github-slices, CTC sets ctc-zip)")
    parser.add_argument("--base-url", default=None, metavar="URL",
                        help=f"download from a mirror of the canonical layout at URL (also ${_BASE_URL_ENV})")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run_fetch(args: argparse.Namespace) -> int:
    """``python -m unet_tutorial fetch NAME``: 0 when the data are in place, 1 with a message if not."""
    try:
        folder = fetch(args.name, data_dir=args.data_dir, progress=not args.no_progress,
                       source=args.source, base_url=args.base_url)
    except (OSError, ValueError) as error:  # our errors subclass these; the message says what to do
        print(f"fetch {args.name} failed: {error}", file=sys.stderr)
        return 1
    info = dataset_info(args.name)
    print(f"{args.name}: verified, in {folder}")
    print(f"Terms: {info.license}")
    print("Cite: " + " | ".join(info.citation))
    return 0


# The training input pipeline lives in pipeline.py; re-exported here so that
# ``datasets.SegmentationDataset`` is the one place readers look for data.
from .pipeline import SegmentationDataset  # noqa: E402,F401
