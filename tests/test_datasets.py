"""Tests of the data layer: manifest, loaders, fingerprints and the errors for bad input.

Real-data tests read ../shared/data (fixture ``shared_data``) and work on
copies in ``tmp_path`` when they need to damage a file.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil

import numpy as np
import pytest
import tifffile

from unet_tutorial import datasets

CTC_SETS = ["PhC-C2DH-U373", "DIC-C2DH-HeLa"]
# GT/SEG frame numbers per sequence, as listed in each SOURCE.md.
CTC_GT_FRAMES = {
    ("PhC-C2DH-U373", "01"): (1, 5, 6, 7, 21, 49, 59, 67, 72, 75, 92, 96, 100, 102, 112),
    ("PhC-C2DH-U373", "02"): (10, 17, 19, 20, 22, 26, 35, 36, 41, 49, 51, 52, 59, 74, 77, 85, 92, 106, 112),
    ("DIC-C2DH-HeLa", "01"): (2, 5, 21, 31, 33, 34, 39, 54, 67),
    ("DIC-C2DH-HeLa", "02"): (6, 7, 14, 27, 34, 38, 42, 61, 67),
}
CTC_FRAME_SHAPE = {"PhC-C2DH-U373": (520, 696), "DIC-C2DH-HeLa": (512, 512)}


def _copy_isbi(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A writable copy of the three ISBI stacks; returns the data root."""
    folder = tmp_path / "isbi2012"
    folder.mkdir()
    for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        shutil.copyfile(shared_data / "isbi2012" / name, folder / name)
    return tmp_path


def _link_ctc(shared_data: pathlib.Path, tmp_path: pathlib.Path, name: str, sequence: str) -> pathlib.Path:
    """A copy of one CTC sequence (frames, GT/SEG and GT/TRA) made of symlinks; returns the data root."""
    for sub in (sequence, f"{sequence}_GT/SEG", f"{sequence}_GT/TRA"):
        (tmp_path / name / sub).mkdir(parents=True)
        for path in (shared_data / name / sub).iterdir():
            (tmp_path / name / sub / path.name).symlink_to(path)
    return tmp_path


def _replace(link: pathlib.Path, data: bytes | np.ndarray, **imwrite) -> None:
    """Replace a (symlinked) file by bytes or by a TIFF of ``data``."""
    link.unlink()
    if isinstance(data, bytes):
        link.write_bytes(data)
    else:
        tifffile.imwrite(link, data, **imwrite)


# ---------------------------------------------------------------------------
# The manifest.


def test_manifest_lists_the_three_datasets_with_terms_and_citations():
    known = datasets.manifest()
    assert set(known) == {"isbi2012", "PhC-C2DH-U373", "DIC-C2DH-HeLa"}
    for info in known.values():
        assert info.license and info.citation
        for source in info.sources.values():
            assert source.base_url.startswith("https://")
    isbi = known["isbi2012"]
    assert any("Cardona" in c for c in isbi.citation)
    slices = isbi.sources["github-slices"]
    assert "b45af4d458437d8281cc218a07fd4380818ece4a" in slices.base_url
    assert len(slices.files) == 90
    assert isbi.sources["imagej-zip"].archives[0].path == "ISBI-2012-challenge.zip"
    assert known["DIC-C2DH-HeLa"].sources["ctc-zip"].archives[0].path == "DIC-C2DH-HeLa.zip"
    # every pinned hash is a sha256 hex digest
    hashes = [h for info in known.values() for h in info.files.values()]
    hashes += [h for f in slices.files for h in f.sha256]
    assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)


@pytest.mark.integration
def test_manifest_hashes_agree_with_shared_sha256sums(shared_data):
    for name, info in datasets.manifest().items():
        sums = dict(
            reversed(line.split(None, 1)) for line in (shared_data / name / "SHA256SUMS").read_text().splitlines()
        )
        for relative, sha in info.files.items():
            assert sums[relative] == sha
        for remote in info.sources.get("github-slices", datasets.Source("", "", "")).files:
            assert sums[remote.target] == remote.sha256[0]
        for filename, stack in info.stacks.items():
            assert sums[filename] == stack.sha256


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(datasets.UnknownDatasetError) as err:
        datasets.fetch("isbi2013")
    for name in ("isbi2013", "isbi2012", "PhC-C2DH-U373", "DIC-C2DH-HeLa"):
        assert name in str(err.value)
    assert isinstance(err.value, ValueError)
    with pytest.raises(datasets.UnknownDatasetError, match="DIC-C2DH-HeLa"):
        datasets.load_ctc("Fluo-N2DH-GOWT1")
    with pytest.raises(datasets.UnknownDatasetError, match="not a Cell Tracking Challenge"):
        datasets.load_ctc("isbi2012")


def test_pixel_fingerprint_depends_on_pixels_shape_and_dtype_only():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(4, 6), dtype=np.uint8)
    assert datasets.pixel_fingerprint(a) == datasets.pixel_fingerprint(np.asfortranarray(a))
    b = a.copy()
    b[2, 3] ^= 1
    assert datasets.pixel_fingerprint(b) != datasets.pixel_fingerprint(a)
    assert datasets.pixel_fingerprint(a.reshape(6, 4)) != datasets.pixel_fingerprint(a)
    assert datasets.pixel_fingerprint(a.astype(np.uint16)) != datasets.pixel_fingerprint(a)


# ---------------------------------------------------------------------------
# Where data live.


def test_data_dir_argument_then_env_then_checkout(tmp_path, monkeypatch, repo_root):
    monkeypatch.setenv("UNET_TUTORIAL_DATA", str(tmp_path / "env"))
    assert datasets.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert datasets.data_dir() == tmp_path / "env"
    monkeypatch.delenv("UNET_TUTORIAL_DATA")
    assert datasets.data_dir() == repo_root / "data"


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(datasets.DatasetNotFoundError) as err:
        datasets.load_isbi2012(data_dir=tmp_path)
    message = str(err.value)
    assert "python -m unet_tutorial fetch isbi2012" in message and "UNET_TUTORIAL_DATA" in message
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(datasets.DatasetNotFoundError, match="fetch DIC-C2DH-HeLa"):
        datasets.load_ctc("DIC-C2DH-HeLa", "02", data_dir=tmp_path)


# ---------------------------------------------------------------------------
# ISBI 2012 on the real data.


@pytest.mark.integration
def test_isbi2012_shapes_dtypes_and_label_convention(shared_data):
    data = datasets.load_isbi2012(data_dir=shared_data)
    for array in data:
        assert array.shape == (30, 512, 512) and array.dtype == np.uint8
    assert set(np.unique(data.labels)) == {0, 1}
    membrane = data.labels == 0
    # SOURCE.md: 21.96 % of the training pixels are membrane (0 on disk)
    assert membrane.mean() == pytest.approx(0.2196, abs=5e-4)
    # membranes are dark in EM: label 0 must sit on the darker pixels
    assert data.images[membrane].mean() < data.images[~membrane].mean() - 30
    # label 1 is exactly where the file says 255
    raw = tifffile.imread(shared_data / "isbi2012" / "train-labels.tif")
    np.testing.assert_array_equal(data.labels == 1, raw == 255)
    assert not np.array_equal(data.images, data.test_images)


@pytest.mark.integration
def test_isbi_fingerprint_accepts_reencoded_copy(shared_data, tmp_path):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "train-volume.tif"
    original = tifffile.imread(path)
    path.unlink()
    tifffile.imwrite(path, original, compression="zlib")  # other container bytes, same pixels
    assert datasets.file_sha256(path) != datasets.dataset_info("isbi2012").stacks["train-volume.tif"].sha256
    data = datasets.load_isbi2012(data_dir=root)
    np.testing.assert_array_equal(data.images, original)
    assert datasets.fetch("isbi2012", data_dir=root, progress=False) == root / "isbi2012"


@pytest.mark.integration
def test_isbi_fingerprint_rejects_one_changed_pixel(shared_data, tmp_path):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "test-volume.tif"
    stack = tifffile.imread(path)
    stack[17, 100, 200] ^= 1
    tifffile.imwrite(path, stack)
    expected = datasets.dataset_info("isbi2012").stacks["test-volume.tif"].pixel_sha256
    with pytest.raises(datasets.ChecksumError) as err:
        datasets.load_isbi2012(data_dir=root)
    message = str(err.value)
    assert "test-volume.tif" in message and expected in message
    assert datasets.pixel_fingerprint(stack) in message
    with pytest.raises(datasets.ChecksumError):
        datasets.fetch("isbi2012", data_dir=root, progress=False)
    # verify=False is the escape hatch for a deliberately modified copy
    assert datasets.load_isbi2012(data_dir=root, verify=False).test_images[17, 100, 200] == stack[17, 100, 200]


@pytest.mark.integration
def test_isbi_label_with_unexpected_values(shared_data, tmp_path):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "train-labels.tif"
    labels = tifffile.imread(path)
    labels[0, :2, :2] = 128  # e.g. a resized label image with blurred edges
    tifffile.imwrite(path, labels)
    with pytest.raises(datasets.LabelValueError, match=r"0 \(membrane\) and 255 \(cell\).*128"):
        datasets.load_isbi2012(data_dir=root)


@pytest.mark.integration
def test_isbi_truncated_file(shared_data, tmp_path):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "train-labels.tif"
    path.write_bytes(path.read_bytes()[:5_000_000])
    with pytest.raises(datasets.ImageFormatError, match="truncated") as err:
        datasets.load_isbi2012(data_dir=root)
    assert "train-labels.tif" in str(err.value)


@pytest.mark.integration
def test_isbi_non_tiff_file(shared_data, tmp_path):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "train-volume.tif"
    shutil.copyfile(shared_data / "isbi2012" / "slices" / "train-volume" / "0.png", path)  # a PNG named .tif
    with pytest.raises(datasets.ImageFormatError, match="as a TIFF") as err:
        datasets.load_isbi2012(data_dir=root)
    assert "train-volume.tif" in str(err.value)


@pytest.mark.integration
@pytest.mark.parametrize(
    "shape, pattern",
    [((30, 512, 512, 3), "3 channels"), ((512, 512), "3 dimensions"), ((20, 512, 512), r"expected shape \(30, 512, 512\)")],
)
def test_isbi_wrong_dimensions_or_channels(shared_data, tmp_path, shape, pattern):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "test-volume.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint8), photometric="rgb" if shape[-1] == 3 else "minisblack")
    with pytest.raises(datasets.ImageFormatError, match=pattern):
        datasets.load_isbi2012(data_dir=root)


@pytest.mark.integration
def test_isbi_wrong_dtype(shared_data, tmp_path):
    root = _copy_isbi(shared_data, tmp_path)
    path = root / "isbi2012" / "train-volume.tif"
    tifffile.imwrite(path, tifffile.imread(path).astype(np.float32))
    with pytest.raises(datasets.ImageFormatError, match="dtype uint8, got float32"):
        datasets.load_isbi2012(data_dir=root)


# ---------------------------------------------------------------------------
# Cell Tracking Challenge on the real data.


@pytest.mark.integration
@pytest.mark.parametrize("name, sequence", sorted(CTC_GT_FRAMES))
def test_ctc_pairs_frames_with_masks(shared_data, name, sequence):
    data = datasets.load_ctc(name, sequence, data_dir=shared_data)
    frames = CTC_GT_FRAMES[name, sequence]
    assert data.frame_numbers == frames
    assert data.images.shape == (len(frames), *CTC_FRAME_SHAPE[name]) and data.images.dtype == np.uint8
    assert data.masks.shape == data.images.shape and data.masks.dtype == np.int32
    for i, number in enumerate(frames):
        # images[i] is frame tNNN and masks[i] is man_segNNN of the same NNN
        np.testing.assert_array_equal(data.images[i], tifffile.imread(shared_data / name / sequence / f"t{number:03d}.tif"))
        mask = tifffile.imread(shared_data / name / f"{sequence}_GT" / "SEG" / f"man_seg{number:03d}.tif")
        np.testing.assert_array_equal(data.masks[i], mask.astype(np.int32))
        assert data.masks[i].min() == 0 and data.masks[i].max() >= 1
    # the number of annotated frames matches the manifest (15 + 19 for U373, 9 + 9 for HeLa)
    assert len(frames) == datasets.dataset_info(name).gt_seg_counts[sequence]


@pytest.mark.integration
def test_ctc_hela_cells_per_mask_as_in_source(shared_data):
    data = datasets.load_ctc("DIC-C2DH-HeLa", 1, data_dir=shared_data)  # int sequence works too
    cells = [len(np.unique(m)) - 1 for m in data.masks]
    assert cells == [10, 10, 11, 13, 13, 12, 13, 13, 3]  # SOURCE.md, 01_GT/SEG


def test_ctc_bad_sequence_name(tmp_path):
    with pytest.raises(ValueError, match=r"sequence must be one of \('01', '02'\), got '03'"):
        datasets.load_ctc("DIC-C2DH-HeLa", "03", data_dir=tmp_path)


@pytest.mark.integration
def test_ctc_changed_pixel_is_a_checksum_error(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "DIC-C2DH-HeLa", "02")
    path = root / "DIC-C2DH-HeLa" / "02_GT" / "SEG" / "man_seg027.tif"
    mask = tifffile.imread(path)
    mask[0, 0] += 1
    _replace(path, mask, compression="lzw")
    expected = datasets.dataset_info("DIC-C2DH-HeLa").files["02_GT/SEG/man_seg027.tif"]
    with pytest.raises(datasets.ChecksumError) as err:
        datasets.load_ctc("DIC-C2DH-HeLa", "02", data_dir=root)
    assert "man_seg027.tif" in str(err.value) and expected in str(err.value)
    assert datasets.file_sha256(path) in str(err.value)
    assert datasets.load_ctc("DIC-C2DH-HeLa", "02", data_dir=root, verify=False).masks[3][0, 0] == mask[0, 0]


@pytest.mark.integration
def test_ctc_truncated_lzw_frame(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "DIC-C2DH-HeLa", "01")
    path = root / "DIC-C2DH-HeLa" / "01" / "t021.tif"
    _replace(path, path.read_bytes()[:50_000])
    with pytest.raises(datasets.ImageFormatError, match="t021.tif.*(truncated|damaged)"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root)


@pytest.mark.integration
def test_ctc_non_tiff_mask(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "DIC-C2DH-HeLa", "01")
    path = root / "DIC-C2DH-HeLa" / "01_GT" / "SEG" / "man_seg005.tif"
    _replace(path, b"<html>404 Not Found</html>\n")
    with pytest.raises(datasets.ImageFormatError, match="man_seg005.tif as a TIFF"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root)


@pytest.mark.integration
def test_ctc_rgb_frame_and_mismatched_mask(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "DIC-C2DH-HeLa", "01")
    frame = root / "DIC-C2DH-HeLa" / "01" / "t002.tif"
    _replace(frame, np.zeros((512, 512, 3), np.uint8), photometric="rgb")
    with pytest.raises(datasets.ImageFormatError, match="t002.tif.*3 channels"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root, verify=False)
    _replace(frame, np.zeros((256, 512), np.uint8))
    with pytest.raises(datasets.ImageFormatError, match=r"man_seg002.tif has shape \(512, 512\).*\(256, 512\)"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root, verify=False)


@pytest.mark.integration
def test_ctc_mask_without_frame_or_missing_mask(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "DIC-C2DH-HeLa", "01")
    (root / "DIC-C2DH-HeLa" / "01" / "t054.tif").unlink()
    with pytest.raises(datasets.DatasetNotFoundError, match="man_seg054.tif has no frame t054.tif"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root)
    (root / "DIC-C2DH-HeLa" / "01_GT" / "SEG" / "man_seg054.tif").unlink()
    with pytest.raises(datasets.DatasetNotFoundError, match="missing.*man_seg054.tif"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root)
    assert len(datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root, verify=False).frame_numbers) == 8


@pytest.mark.integration
def test_verify_local_ctc_missing_file(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "PhC-C2DH-U373", "01")  # sequence 02 is absent
    with pytest.raises(datasets.DatasetNotFoundError, match="files missing.*02/"):
        datasets.fetch("PhC-C2DH-U373", data_dir=root, progress=False)


# ---------------------------------------------------------------------------
# Command line.


def _fetch_cli(argv):
    """The ``fetch`` sub-command as ``python -m unet_tutorial fetch`` wires it."""
    parser = argparse.ArgumentParser(prog="python -m unet_tutorial fetch")
    datasets.add_fetch_arguments(parser)
    return datasets.run_fetch(parser.parse_args(argv))


@pytest.mark.integration
def test_cli_fetch_prints_where_the_data_is(shared_data, capsys):
    assert _fetch_cli(["DIC-C2DH-HeLa", "--data-dir", str(shared_data), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert str(shared_data / "DIC-C2DH-HeLa") in out and "Ulman" in out
    with pytest.raises(SystemExit):
        _fetch_cli(["no-such-set"])
    assert "invalid choice" in capsys.readouterr().err


def test_cli_fetch_missing_data_without_network_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # no waiting between retries
    # a base URL where nothing listens: exit status 1 and a message naming the URL
    argv = ["isbi2012", "--data-dir", str(tmp_path), "--no-progress", "--base-url", "http://127.0.0.1:9"]
    assert _fetch_cli(argv) == 1
    assert re.search(r"fetch isbi2012 failed: Could not download http://127.0.0.1:9/data/membrane/\S+\.png",
                     capsys.readouterr().err)
    assert not list((tmp_path / "isbi2012").rglob("*.part"))
    with pytest.raises(datasets.DownloadError):  # the Python API raises
        datasets.fetch("isbi2012", data_dir=tmp_path, progress=False, base_url="http://127.0.0.1:9")


def test_importing_datasets_and_fetch_help_do_not_import_keras():
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "import unet_tutorial.datasets\n"
            "from unet_tutorial.__main__ import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['fetch', '--help'])\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.integration
def test_ctc_missing_tracking_marker_names_the_file(shared_data, tmp_path):
    root = _link_ctc(shared_data, tmp_path, "DIC-C2DH-HeLa", "01")
    (root / "DIC-C2DH-HeLa" / "01_GT" / "TRA" / "man_track021.tif").unlink()
    with pytest.raises(datasets.DatasetNotFoundError, match="man_seg021.tif has no 01_GT/TRA/man_track021.tif"):
        datasets.load_ctc("DIC-C2DH-HeLa", "01", data_dir=root)
