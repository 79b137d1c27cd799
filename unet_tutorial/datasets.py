"""The paper's three datasets: where they come from, how to get them, how to read them.

Ronneberger et al. 2015 train and evaluate U-Net on three datasets:

* ``isbi2012``: the ISBI 2012 EM segmentation challenge (Sec. 4, Table 1),
  30 training slices of 512x512 with membrane labels, 30 test slices.
* ``PhC-C2DH-U373`` and ``DIC-C2DH-HeLa``: two Cell Tracking Challenge (CTC)
  sets (Sec. 4, Table 2), short videos where some frames have a manual
  instance segmentation (``man_segNNN.tif`` belongs to frame ``tNNN.tif``).

This module is the one place readers import the data layer from; the work is
done in small modules, one job each:

==============  ===========================================================
``manifest``    what each dataset is and what pins it (``manifest.json``),
                ``dataset_names()``, ``data_dir()``, the errors
``tiff``        reading TIFF files with clear errors (``read_tiff``)
``loaders``     ``load_isbi2012()``, ``load_ctc()``: numpy arrays, checked
``packed``      the datasets as ``.npz`` files (``pack_data``), which the
                loaders also read
``download``    ``fetch(name)``: verified downloads, safe unpacking, the CLI
``pipeline``    ``SegmentationDataset``: the training input (imports Keras,
                so it is loaded only when asked for)
==============  ===========================================================

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

from .download import add_fetch_arguments, download_file, fetch, run_fetch, safe_extract_zip, verify_local
from .loaders import CTCData, ISBI2012, load_ctc, load_isbi2012
from .manifest import (ChecksumError, DatasetInfo, DatasetNotFoundError, DownloadError, ImageFormatError,
                       LabelValueError, RemoteFile, Source, StackInfo, UnknownDatasetError, UnsafeArchiveError,
                       ctc_dataset_names, data_dir, dataset_info, dataset_names, file_sha256, manifest,
                       pixel_fingerprint)
from .packed import pack_data
from .tiff import read_tiff

__all__ = [
    "ChecksumError", "CTCData", "DatasetInfo", "DatasetNotFoundError", "DownloadError",
    "ISBI2012", "ImageFormatError", "LabelValueError", "RemoteFile", "SegmentationDataset", "Source",
    "StackInfo", "UnknownDatasetError", "UnsafeArchiveError", "add_fetch_arguments",
    "ctc_dataset_names", "data_dir", "dataset_info", "dataset_names", "download_file", "fetch",
    "file_sha256", "load_ctc", "load_isbi2012", "manifest", "pack_data", "pixel_fingerprint",
    "read_tiff", "run_fetch", "safe_extract_zip", "verify_local",
]


def __getattr__(name: str):
    # The training input pipeline lives in pipeline.py, which imports Keras; it is
    # re-exported here (``datasets.SegmentationDataset``) only when first asked
    # for, so that ``import datasets`` and ``python -m unet_tutorial fetch`` stay fast.
    if name == "SegmentationDataset":
        from .pipeline import SegmentationDataset  # noqa: PLC0415

        return SegmentationDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
