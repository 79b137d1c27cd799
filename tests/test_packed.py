"""Tests of the packed form of the datasets (``datasets.pack_data``) and of the dataset names.

A folder of packed ``.npz`` files is read by the same loaders as a folder laid
out like ``../shared/data``: the arrays must be exactly the ones the loaders
return from the TIFF files, and a damaged or foreign packed file must fail
with an error that says what to do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from unet_tutorial import datasets
from unet_tutorial.manifest import MANIFEST_PATH


def test_dataset_names_are_the_manifest_s_in_its_order():
    raw = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["datasets"]
    assert datasets.dataset_names() == tuple(raw) == ("isbi2012", "PhC-C2DH-U373", "DIC-C2DH-HeLa")
    assert datasets.ctc_dataset_names() == tuple(n for n, e in raw.items() if e.get("gt_seg_counts"))
    assert datasets.ctc_dataset_names() == ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
    for name in set(datasets.dataset_names()) - set(datasets.ctc_dataset_names()):
        with pytest.raises(datasets.UnknownDatasetError, match="not a Cell Tracking Challenge"):
            datasets.load_ctc(name)


@pytest.mark.integration
def test_packed_round_trip_equals_the_loaders(shared_data, tmp_path, monkeypatch):
    packed_dir = tmp_path / "packed"
    written = datasets.pack_data(shared_data, packed_dir, names=("isbi2012", "DIC-C2DH-HeLa"))
    assert sorted(p.name for p in written.values()) == ["DIC-C2DH-HeLa.npz", "isbi2012.npz"]
    assert sorted(p.name for p in packed_dir.iterdir()) == ["DIC-C2DH-HeLa.npz", "isbi2012.npz"]  # no leftovers

    isbi, packed = datasets.load_isbi2012(shared_data), datasets.load_isbi2012(packed_dir)
    assert isinstance(packed, datasets.ISBI2012)
    for field in isbi._fields:
        np.testing.assert_array_equal(getattr(packed, field), getattr(isbi, field))
        assert getattr(packed, field).dtype == getattr(isbi, field).dtype
    for sequence in ("01", 2):
        ctc, packed = (datasets.load_ctc("DIC-C2DH-HeLa", sequence, data_dir) for data_dir in (shared_data, packed_dir))
        assert isinstance(packed, datasets.CTCData)
        np.testing.assert_array_equal(packed.images, ctc.images)
        np.testing.assert_array_equal(packed.masks, ctc.masks)
        assert packed.masks.dtype == np.int32 and packed.frame_numbers == ctc.frame_numbers

    # The device run points UNET_TUTORIAL_DATA (or --data-dir) at the packed folder.
    monkeypatch.setenv("UNET_TUTORIAL_DATA", str(packed_dir))
    np.testing.assert_array_equal(datasets.load_isbi2012().labels, isbi.labels)
    with pytest.raises(datasets.DatasetNotFoundError, match="PhC-C2DH-U373.npz is missing"):
        datasets.load_ctc("PhC-C2DH-U373", "01")  # not packed here
    with pytest.raises(datasets.UnknownDatasetError):
        datasets.load_ctc("isbi2012", "01")

    # One changed pixel in a packed file: the fingerprint recorded at packing time catches it.
    path = packed_dir / "DIC-C2DH-HeLa.npz"
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["images_02"][0, 0, 0] ^= 1
    np.savez_compressed(path, **arrays)
    with pytest.raises(datasets.ChecksumError, match=r"pixel fingerprint mismatch .*images_02"):
        datasets.load_ctc("DIC-C2DH-HeLa", "02", packed_dir)
    assert datasets.load_ctc("DIC-C2DH-HeLa", "01", packed_dir).frame_numbers == (2, 5, 21, 31, 33, 34, 39, 54, 67)
    changed = datasets.load_ctc("DIC-C2DH-HeLa", "02", packed_dir, verify=False)
    assert changed.images[0, 0, 0] == arrays["images_02"][0, 0, 0]


def _write_isbi(folder, images, labels, meta) -> None:
    """An ``isbi2012.npz`` laid out as ``pack_data`` writes it (see unet_tutorial/packed.py)."""
    folder.mkdir(exist_ok=True)
    np.savez_compressed(folder / "isbi2012.npz", images=images, labels=labels, test_images=images,
                        meta=np.array(json.dumps(meta)))


def test_damaged_or_foreign_packed_files_fail_clearly(tmp_path):
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    labels = (images % 2).astype(np.uint8)
    fingerprints = {"images": datasets.pixel_fingerprint(images), "labels": datasets.pixel_fingerprint(labels),
                    "test_images": datasets.pixel_fingerprint(images)}
    meta = {"format": 1, "dataset": "isbi2012", "fingerprints": fingerprints}
    _write_isbi(tmp_path, images, labels, meta)
    assert datasets.load_isbi2012(tmp_path).labels.tolist() == labels.tolist()

    changed = images.copy()
    changed[0, 0, 0] += 1  # one pixel
    _write_isbi(tmp_path, changed, labels, meta)
    with pytest.raises(datasets.ChecksumError, match=r"isbi2012.npz\[images\]") as err:
        datasets.load_isbi2012(tmp_path)
    assert fingerprints["images"] in str(err.value) and "pack it again" in str(err.value)
    assert datasets.load_isbi2012(tmp_path, verify=False).images[0, 0, 0] == changed[0, 0, 0]

    _write_isbi(tmp_path, images, labels, dict(meta, format=99))
    with pytest.raises(ValueError, match="expected format 1 of 'isbi2012'. Pack it again"):
        datasets.load_isbi2012(tmp_path)

    (tmp_path / "isbi2012.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(datasets.ImageFormatError, match="not a readable packed dataset"):
        datasets.load_isbi2012(tmp_path)

    # A packed folder without the CTC files says how to pack them, not how to download TIFFs.
    with pytest.raises(datasets.DatasetNotFoundError, match="pack_data"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", tmp_path)
