"""The manifest of the paper's datasets: what each one is, where it comes from, what pins it.

``unet_tutorial/manifest.json`` is read once into the frozen dataclasses
below. It pins every file by sha256 (``file_sha256``) and every ISBI stack by
a fingerprint of its decoded pixels (``pixel_fingerprint``), and keeps the
licence terms and the citations. This module also says where the datasets
live on disk (``data_dir``) and defines the errors the data layer raises.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
from typing import Mapping

import numpy as np

__all__ = [
    "ChecksumError", "DatasetInfo", "DatasetNotFoundError", "DownloadError", "ImageFormatError",
    "LabelValueError", "RemoteFile", "Source", "StackInfo", "UnknownDatasetError",
    "UnsafeArchiveError", "CTC_SEQUENCES", "ctc_dataset_names", "data_dir", "dataset_info",
    "dataset_names", "file_sha256", "manifest", "missing_message", "pixel_fingerprint",
]

MANIFEST_PATH = pathlib.Path(__file__).with_name("manifest.json")
BASE_URL_ENV = "UNET_TUTORIAL_BASE_URL"  # replaces a source's base URL (a mirror, the tests' server)
DATA_ENV = "UNET_TUTORIAL_DATA"  # the folder that holds the datasets
CTC_SEQUENCES = ("01", "02")  # the two sequences of every Cell Tracking Challenge set

# ---------------------------------------------------------------------------
# Errors. Each subclasses the built-in exception a caller would expect, so
# ``except FileNotFoundError`` or ``except ValueError`` keep working.


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or one of its files) is not where the loader looked."""


class UnknownDatasetError(ValueError):
    """A dataset name that is not in the manifest."""


class ChecksumError(ValueError):
    """A file (or its decoded pixels) does not have the pinned sha256."""

    def __init__(self, path, expected, found, what="sha256",
                 remedy="delete it and run `python -m unet_tutorial fetch` again"):
        self.path, self.expected, self.found = str(path), expected, found
        expected_text = " or ".join(expected) if isinstance(expected, (list, tuple)) else expected
        super().__init__(
            f"{what} mismatch for {path}: expected {expected_text}, found {found}. "
            f"The file is corrupted, truncated or a different version; {remedy}."
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


def as_tuple(value) -> tuple[str, ...]:
    """A manifest value that may be one string or a list of them, as a tuple."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@functools.lru_cache(maxsize=None)
def manifest() -> Mapping[str, DatasetInfo]:
    """All datasets of the manifest, by name, in the manifest's order (read once from ``manifest.json``)."""
    raw = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    datasets = {}
    for name, entry in raw["datasets"].items():
        sources = {
            key: Source(
                name=key,
                description=src["description"],
                base_url=src["base_url"],
                files=tuple(RemoteFile(f["path"], as_tuple(f["sha256"]), f.get("target", ""))
                            for f in src.get("files", [])),
                archives=tuple(RemoteFile(a["path"], as_tuple(a["sha256"]))
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


def dataset_names() -> tuple[str, ...]:
    """Every dataset of the manifest, in its order: ``("isbi2012", "PhC-C2DH-U373", "DIC-C2DH-HeLa")``."""
    return tuple(manifest())


def ctc_dataset_names() -> tuple[str, ...]:
    """The Cell Tracking Challenge datasets (those with GT/SEG masks), in the manifest's order."""
    return tuple(name for name, info in manifest().items() if info.gt_seg_counts)


def dataset_info(name: str) -> DatasetInfo:
    """The manifest entry of dataset ``name``; raises ``UnknownDatasetError`` listing the known ones."""
    known = manifest()
    if name not in known:
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(sorted(known))}."
        )
    return known[name]


# ---------------------------------------------------------------------------
# Fingerprints: what the manifest pins.


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes (``pooch.file_hash``)."""
    import pooch  # noqa: PLC0415 (only when a file is checked: keeps `import datasets` fast)

    return pooch.file_hash(str(path), alg="sha256")


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
# Where data live.


def data_dir(data_dir=None) -> pathlib.Path:
    """The folder that holds the datasets, one sub-folder each (layout of ``../shared/data``).

    Args:
        data_dir: a folder given by the caller; wins over everything else.
    Returns:
        ``data_dir`` if given, else ``$UNET_TUTORIAL_DATA`` if set, else ``data/``
        of the repository when running from a checkout, else the OS cache folder
        (``pooch.os_cache("unet_tutorial")``).
    """
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    configured = os.environ.get(DATA_ENV)
    if configured:
        return pathlib.Path(configured).expanduser()
    checkout = pathlib.Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"  # running from a clone: downloads land in data/ (git-ignored)
    import pooch  # noqa: PLC0415

    return pathlib.Path(pooch.os_cache("unet_tutorial"))


def missing_message(name: str, folder: pathlib.Path, detail: str = "") -> str:
    """The message of a ``DatasetNotFoundError``: what is missing and how to get it."""
    return (
        f"Dataset {name!r} not found at {folder}{': ' + detail if detail else ''}. "
        f"Get it with `python -m unet_tutorial fetch {name}` (or datasets.fetch({name!r})), "
        f"or set {DATA_ENV} (or pass data_dir=) to a folder laid out like ../shared/data."
    )
