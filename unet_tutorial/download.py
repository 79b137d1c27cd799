"""Getting the datasets onto disk: verified downloads, safe unpacking, and the ``fetch`` command.

``fetch(name)`` checks a local copy (a mirror laid out like ``../shared/data``,
or an earlier download) and downloads only what is missing, with ``pooch``:
every file is hash-checked before it is moved into place (``download_file``)
and archives are unpacked only after every member has been checked
(``safe_extract_zip``). ``add_fetch_arguments`` and ``run_fetch`` are
``python -m unet_tutorial fetch NAME``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
import zipfile

import numpy as np

from .files import write_atomic
from .loaders import read_isbi_stack
from .manifest import (BASE_URL_ENV, CTC_SEQUENCES, DATA_ENV, ChecksumError, DatasetInfo, DatasetNotFoundError,
                       DownloadError, RemoteFile, Source, UnsafeArchiveError, as_tuple, data_dir as resolve_data_dir,
                       dataset_info, file_sha256, manifest, missing_message, pixel_fingerprint)
from .tiff import write_tiff_stack

__all__ = ["add_fetch_arguments", "download_file", "fetch", "run_fetch", "safe_extract_zip", "verify_local"]

_log = logging.getLogger(__name__)


def download_file(url: str, destination, sha256=(), progress: bool = True, retries: int = 3,
                  timeout: float = 60.0) -> pathlib.Path:
    """Download ``url`` to ``destination``; the file appears there only once verified.

    The bytes go to a temporary file in the destination folder; it is checked
    against ``sha256`` (a hex string or a sequence of accepted ones; empty =
    no check) and then moved into place (``files.write_atomic``). On any
    failure the temporary file is removed, so no partial file is left behind.

    Raises:
        ChecksumError: names the file, the expected and the found hash.
        DownloadError: network or HTTP error after ``retries`` attempts.
    """
    import pooch  # noqa: PLC0415 (only when downloading: keeps `import datasets` fast)
    import requests  # noqa: PLC0415

    accepted = as_tuple(sha256) if sha256 else ()
    destination = pathlib.Path(destination)

    def download(temporary: pathlib.Path) -> None:
        for attempt in range(1, retries + 1):
            try:
                downloader = pooch.HTTPDownloader(progressbar=progress, chunk_size=1 << 16, timeout=timeout)
                downloader(url, str(temporary), None)
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

    return write_atomic(destination, download)


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
    url = base_url or os.environ.get(BASE_URL_ENV) or source.base_url
    return url.rstrip("/") + "/"


def verify_local(name: str, data_dir=None) -> pathlib.Path:
    """Check a local copy of dataset ``name`` against the manifest; return its folder.

    ISBI stacks: sha256 of the file, or else the pixel fingerprint. CTC: every
    frame and GT/SEG mask listed in the manifest exists and has its sha256.
    """
    info = dataset_info(name)
    folder = resolve_data_dir(data_dir) / name
    if not folder.is_dir():
        raise DatasetNotFoundError(missing_message(name, folder))
    for filename, stack in info.stacks.items():
        path = folder / filename
        if not path.is_file():
            raise DatasetNotFoundError(missing_message(name, folder, f"{filename} is missing"))
        if file_sha256(path) != stack.sha256:
            read_isbi_stack(path, stack, True, filename == "train-labels.tif")
    missing = [p for p in info.files if not (folder / p).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{folder} holds an incomplete copy of {name!r}: {len(missing)} files missing, e.g. "
            f"{missing[:3]}. Move the folder away and run `python -m unet_tutorial fetch {name}` "
            f"again, or point {DATA_ENV} (or data_dir=) to a complete copy."
        )
    for relative, expected in info.files.items():
        found = file_sha256(folder / relative)
        if found != expected:
            raise ChecksumError(folder / relative, expected, found)
    return folder


def _has_local_copy(info: DatasetInfo, folder: pathlib.Path) -> bool:
    if info.stacks:
        return all((folder / f).is_file() for f in info.stacks)
    return any((folder / s).is_dir() for s in CTC_SEQUENCES)


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
    root = resolve_data_dir(data_dir)
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
    from tqdm.auto import tqdm  # noqa: PLC0415

    for remote in tqdm(source.files, desc=f"{info.name}", unit="file", disable=not progress):
        destination = folder / remote.target
        if destination.is_file() and file_sha256(destination) in remote.sha256:
            continue  # an earlier, interrupted fetch already got this one
        download_file(url + remote.path, destination, remote.sha256, progress=False)
    if info.stacks:
        _build_isbi_stacks(info, folder)


def _build_isbi_stacks(info: DatasetInfo, folder: pathlib.Path) -> None:
    """Stack the per-slice PNGs into the three 30-page TIFFs, checked by pixel fingerprint."""
    from PIL import Image  # noqa: PLC0415

    for filename, stack in info.stacks.items():
        slice_dir = folder / "slices" / filename.removesuffix(".tif")
        array = np.stack([np.asarray(Image.open(slice_dir / f"{i}.png")) for i in range(stack.shape[0])])
        found = pixel_fingerprint(array)
        if found != stack.pixel_sha256:
            raise ChecksumError(slice_dir, stack.pixel_sha256, found, what="pixel fingerprint")
        write_tiff_stack(folder / filename, array)


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
                read_isbi_stack(found[0], stack, True, filename == "train-labels.tif")
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
                        help=f"folder for the datasets (default: ${DATA_ENV}, else data/ of the checkout or the OS cache)")
    sources = sorted({key for info in manifest().values() for key in info.sources})
    parser.add_argument("--source", default=None, choices=sources,
                        help="where to download from (default: isbi2012 github-slices, CTC sets ctc-zip)")
    parser.add_argument("--base-url", default=None, metavar="URL",
                        help=f"download from a mirror of the canonical layout at URL (also ${BASE_URL_ENV})")
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
