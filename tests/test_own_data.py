"""Your own data end to end: train from folders (two and three classes), predict to PNGs, score per class.

The folders are made here: grey or RGB images of discs and squares on a noisy
background, masks of the same names. Each run is a tiny network for a few
dozen steps on the CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from unet_tutorial import own_data
from unet_tutorial.__main__ import main
from unet_tutorial.predict_folder import OUTPUT_KINDS

pytestmark = pytest.mark.slow


def make_folders(root, n_images=6, size=(72, 88), n_classes=3, rgb=False, seed=0, binary=False):
    """images/NAME.png and masks/NAME.png: discs (class 1) and squares (class 2), grey levels by class."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[: size[0], : size[1]]
    for i in range(n_images):
        mask = np.zeros(size, np.uint8)
        for _ in range(6):
            r, c = rng.integers(8, size[0] - 8), rng.integers(8, size[1] - 8)
            radius = rng.integers(4, 8)
            if n_classes > 2 and rng.random() < 0.5:
                mask[(abs(rows - r) <= radius) & (abs(cols - c) <= radius)] = 2
            else:
                mask[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = 1
        image = np.array([0.2, 0.55, 0.9])[mask] + rng.normal(0, 0.08, size)
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        if rgb:
            image = np.stack([image, 255 - image, image // 2], axis=-1)
        Image.fromarray(image).save(root / "images" / f"frame_{i:02d}.png")
        Image.fromarray(mask * 255 if binary else mask).save(root / "masks" / f"frame_{i:02d}.png")
    return root / "images", root / "masks"


TINY = dict(epochs=3, steps_per_epoch=8, batch_size=4, tile_size=92, validation_folds=3, learning_rate=1e-2)


@pytest.mark.parametrize("n_classes, rgb, binary", [(2, False, True), (3, True, False)])
def test_training_on_folders_learns(tmp_path, capsys, n_classes, rgb, binary):
    images, masks = make_folders(tmp_path / "data", n_classes=n_classes, rgb=rgb, binary=binary)
    history = own_data.train_folders(images, masks, preset="cpu-tiny", verbose=0, output_dir=str(tmp_path / "run"), **TINY)
    before, after = history["initial_metrics"]["val_pixel_error"], history["val_pixel_error"][-1]
    assert after < 0.6 * before, f"held-out pixel error {before:.3f} -> {after:.3f}"
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["n_classes"] == n_classes and state["config"]["dataset"] == "folders"
    assert state["held_out_files"] == ["frame_00", "frame_01"] and len(state["trained_files"]) == 4
    assert ("255 is read as class 1" in capsys.readouterr().out) == binary

    # predict: an image larger than the tile, by overlap-tile; every file for each image
    big = tmp_path / "big"
    big.mkdir()
    Image.open(images / "frame_00.png").resize((300, 250)).save(big / "large.png")
    assert main(["predict", "--model", str(tmp_path / "run" / "model.keras"), "--images", str(big),
                 "--output", str(tmp_path / "out"), "--tile-size", "92", "--quiet"]) == 0
    for kind in OUTPUT_KINDS:
        assert (tmp_path / "out" / f"large_{kind}").is_file(), kind
    mask = np.asarray(Image.open(tmp_path / "out" / "large_mask.png"))
    assert mask.shape == (250, 300) and mask.max() < n_classes
    assert np.asarray(Image.open(tmp_path / "out" / "large_colour.png")).shape == (250, 300, 3)
    assert np.asarray(Image.open(tmp_path / "out" / "large_overlay.png")).shape == (250, 300, 3)
    probabilities = tifffile.imread(tmp_path / "out" / "large_probabilities.tif")
    assert probabilities.shape == (n_classes, 250, 300)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(probabilities.argmax(0), mask)
    assert len(list((tmp_path / "out").iterdir())) == 4  # no temporary files left

    # evaluate: the per-class table on the held-out files only
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "run" / "model.keras"), "--images", str(images),
                 "--masks", str(masks)]) == 0
    out = capsys.readouterr().out
    assert "2 of 6 images (the 4 the model trained on are left out)" in out
    lines = [line.split() for line in out.splitlines()]
    table = {line[0]: line for line in lines if line and line[0].isdigit()}
    assert sorted(table) == [str(c) for c in range(n_classes)]
    mean = next(line for line in lines if line and line[0] == "mean")
    assert 0.5 < float(mean[1]) <= 1.0  # mean IoU of a model that learnt


def test_training_from_the_command_line_names_the_data_in_state_json(tmp_path):
    images, masks = make_folders(tmp_path / "data", n_images=4, n_classes=3)
    run = tmp_path / "run"
    assert main(["train", "--preset", "cpu-tiny", "--images", str(images), "--masks", str(masks), "--n-classes", "4",
                 "--epochs", "1", "--steps-per-epoch", "2", "--tile-size", "92", "--validation-folds", "2",
                 "--output", str(run), "--quiet"]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["n_classes"] == 4 and state["config"]["images"] == str(images)
    assert state["held_out_files"] == ["frame_00", "frame_01"]


def test_predict_and_train_errors_name_the_file_and_leave_earlier_outputs(tmp_path, capsys):
    from unet_tutorial.model import build_unet

    images, masks = make_folders(tmp_path / "data", n_images=2, n_classes=2)
    model_path = tmp_path / "model.keras"
    build_unet(input_shape=(None, None, 1), base_filters=4, depth=2, dropout=0.0).save(model_path)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_path), "--images", str(images), "--output", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(before) == 2 * len(OUTPUT_KINDS)
    (images / "frame_01.png").write_bytes(b"broken")
    capsys.readouterr()
    assert main(["predict", "--model", str(model_path), "--images", str(images), "--output", str(out), "--quiet"]) == 1
    assert "frame_01.png: cannot be read" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing lost, nothing half-written
    assert main(["train", "--preset", "cpu-tiny", "--images", str(images), "--masks", str(masks),
                 "--output", str(tmp_path / "run")]) == 1
    assert "frame_01.png: cannot be read" in capsys.readouterr().err
