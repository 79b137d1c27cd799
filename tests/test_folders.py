"""Your own data: reading image and mask files, pairing folders, every bad input's error, K-class weights and scores.

Fast: small files the tests make, no Keras.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from unet_tutorial import class_scores, class_weights, folders, image_files, splits
from unet_tutorial.config import TrainConfig
from unet_tutorial.weights import weight_map


def _png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode=mode).save(path)
    return path


def _pair(root, name, image, mask):
    _png(root / "images" / f"{name}.png", image)
    _png(root / "masks" / f"{name}.png", mask)


def _three_class(size=(12, 16)):
    mask = np.zeros(size, np.uint8)
    mask[2:6, 2:8] = 1
    mask[7:10, 9:14] = 2
    return mask


# ----------------------------------------------------------------------------- reading files


def test_index_palette_and_binary_masks_are_read_as_classes(tmp_path):
    mask = _three_class()
    index = image_files.read_mask(_png(tmp_path / "index.png", mask))
    assert index[1] == "index" and np.array_equal(index[0], mask)
    palette = Image.fromarray(mask, mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
    palette.save(tmp_path / "palette.png")
    read, kind = image_files.read_mask(tmp_path / "palette.png")
    assert kind == "palette" and np.array_equal(read, mask)
    binary = image_files.read_mask(_png(tmp_path / "binary.png", (mask > 0).astype(np.uint8) * 255))
    assert binary[1] == "binary" and np.array_equal(binary[0], (mask > 0).astype(np.int32))
    tifffile.imwrite(tmp_path / "index16.tif", mask.astype(np.uint16))
    assert np.array_equal(image_files.read_mask(tmp_path / "index16.tif")[0], mask)


def test_grey_rgb_and_float_images_keep_their_channels(tmp_path):
    grey = image_files.read_image(_png(tmp_path / "g.png", np.full((5, 7), 9, np.uint8)))
    rgb = image_files.read_image(_png(tmp_path / "c.png", np.zeros((5, 7, 3), np.uint8)))
    tifffile.imwrite(tmp_path / "f.tif", np.linspace(0, 1, 35, dtype=np.float32).reshape(5, 7))
    floats = image_files.read_image(tmp_path / "f.tif")
    assert grey.shape == (5, 7, 1) and grey.dtype == np.uint8 and int(grey.max()) == 9
    assert rgb.shape == (5, 7, 3)
    assert floats.shape == (5, 7, 1) and floats.dtype == np.float32 and float(floats.max()) == 1.0


# ----------------------------------------------------------------------------- folders


def test_load_folders_pairs_by_stem_and_infers_k(tmp_path):
    mask = _three_class()
    for name in ("b", "a", "c"):
        _pair(tmp_path, name, np.full(mask.shape, 100, np.uint8), mask)
    data = folders.load_folders(tmp_path / "images", tmp_path / "masks")
    assert data.names == ["a", "b", "c"] and data.n_classes == 3 and data.notices == []
    assert data.images[0].shape == (12, 16, 1) and np.array_equal(data.masks[2], mask)
    assert folders.load_folders(str(tmp_path / "images" / "*.png"), tmp_path / "masks", n_classes=5).n_classes == 5


def test_binary_masks_give_two_classes_and_a_one_line_notice(tmp_path):
    for name in ("a", "b"):
        _pair(tmp_path, name, np.zeros((8, 8), np.uint8), np.where(_three_class((8, 8)) > 0, 255, 0).astype(np.uint8))
    data = folders.load_folders(tmp_path / "images", tmp_path / "masks")
    assert data.n_classes == 2 and set(np.unique(data.masks[0]).tolist()) == {0, 1}
    assert len(data.notices) == 1 and "255" in data.notices[0] and "\n" not in data.notices[0]


def test_held_out_files_are_a_block_of_names():
    trained, held_out = splits.held_out_files(["c", "a", "e", "b", "d"], 5, 1)
    assert held_out == ["b"] and trained == ["a", "c", "d", "e"]


# ----------------------------------------------------------------------------- bad input: each its own error


@pytest.mark.parametrize("where", ["empty", "nothing-*.png"])
def test_an_empty_folder_or_a_glob_that_matches_nothing(tmp_path, where):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        folders.load_folders(tmp_path / where if where == "empty" else str(tmp_path / where), tmp_path / "empty")


def test_unpaired_files_are_listed(tmp_path):
    mask = _three_class()
    _pair(tmp_path, "a", np.zeros(mask.shape, np.uint8), mask)
    _png(tmp_path / "images" / "only_image.png", np.zeros(mask.shape, np.uint8))
    _png(tmp_path / "masks" / "only_mask.png", mask)
    with pytest.raises(ValueError, match="without a mask: only_image.png.*without an image: only_mask.png"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


def test_a_mask_of_another_size(tmp_path):
    _pair(tmp_path, "a", np.zeros((12, 16), np.uint8), _three_class((12, 15)))
    with pytest.raises(ValueError, match=r"a\.png: the mask is 12x15.*image a\.png is 12x16"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


def test_mask_values_outside_the_classes(tmp_path):
    _pair(tmp_path, "a", np.zeros((12, 16), np.uint8), _three_class())
    with pytest.raises(ValueError, match=r"masks/a\.png: holds values 2 outside the classes 0\.\.1"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks", n_classes=2)


def test_an_rgb_mask_that_is_not_a_palette_image(tmp_path):
    colours = np.zeros((12, 16, 3), np.uint8)
    colours[_three_class() == 1] = (255, 0, 0)
    _pair(tmp_path, "a", np.zeros((12, 16), np.uint8), colours)
    with pytest.raises(ValueError, match=r"a\.png: is an RGB colour mask.*palette PNG"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


def test_images_with_different_channel_counts(tmp_path):
    mask = _three_class()
    _pair(tmp_path, "grey", np.zeros(mask.shape, np.uint8), mask)
    _pair(tmp_path, "rgb", np.zeros((*mask.shape, 3), np.uint8), mask)
    with pytest.raises(ValueError, match=r"different numbers of channels \(1 channel\(s\): grey.png; 3 channel\(s\): rgb.png"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_unreadable_or_truncated_files(tmp_path, damage):
    mask = _three_class((64, 64))
    _pair(tmp_path, "a", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), mask)
    path = tmp_path / "images" / "a.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"hello, not a PNG")
    with pytest.raises(ValueError, match=r"images/a\.png: cannot be read as an image.*export it again or remove it"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                            (1.5, r"must lie in \[0, 1\], found 0..1.5")])
def test_float_images_that_are_not_finite_or_outside_0_1(tmp_path, value, message):
    image = np.zeros((12, 16), np.float32)
    image[3, 4] = value
    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", image)
    _png(tmp_path / "masks" / "a.png", _three_class())
    with pytest.raises(ValueError, match=r"a\.tif: .*" + message):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


def test_masks_holding_only_background(tmp_path):
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="only class 0"):
        folders.load_folders(tmp_path / "images", tmp_path / "masks")


def test_the_config_asks_for_images_and_masks_together():
    with pytest.raises(ValueError, match="give both images and masks"):
        TrainConfig(dataset="folders", images="x")
    with pytest.raises(ValueError, match="set dataset='folders'"):
        TrainConfig(images="x", masks="y")
    with pytest.raises(ValueError, match="n_classes"):
        TrainConfig(dataset="folders", images="x", masks="y", n_classes=1)


# ----------------------------------------------------------------------------- K classes: weights and scores


def test_the_k_class_weight_map_is_the_paper_map_for_two_classes():
    from unet_tutorial.pipeline import synthetic_cells

    _, instances = synthetic_cells(n_images=1, size=64, seed=3)
    labels = (instances[0] > 0).astype(np.int32)
    from scipy import ndimage

    cells = ndimage.label(labels)[0]
    np.testing.assert_allclose(class_weights.class_weight_map(labels, 2), weight_map(cells), rtol=1e-6)


def test_the_k_class_weight_map_balances_every_class_and_weights_gaps_between_objects():
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 17:27] = 2  # a different class, 2 px away
    labels[30:32, 30:32] = 2
    w_c = class_weights.class_balance_k(labels, 3)
    for c in range(3):  # each class contributes the same total weight
        np.testing.assert_allclose(w_c[labels == c].sum(), labels.size / 3, rtol=1e-5)
    w = class_weights.class_weight_map(labels, 3)
    gap, far = w[10, 16], w[35, 5]
    assert gap > far + 5  # the border term between the two objects (w0 = 10)
    assert np.allclose(w[labels > 0], w_c[labels > 0])  # added on class 0 only


def test_per_class_scores_count_iou_dice_and_seg():
    truth = np.zeros((10, 10), np.int32)
    truth[:, 5:] = 1
    truth[0:2, 0:2] = 2
    predicted = truth.copy()
    predicted[:, 5] = 0  # 10 of the 50 class-1 pixels missed
    rows = class_scores.per_class_scores(predicted, truth, 3, ["bg", "a", "b"])
    assert [r["name"] for r in rows] == ["bg", "a", "b", "mean"]
    assert rows[1]["iou"] == pytest.approx(40 / 50) and rows[1]["dice"] == pytest.approx(80 / 90)
    assert rows[0]["iou"] == pytest.approx(46 / 56) and rows[2]["iou"] == 1.0 and rows[2]["seg"] == 1.0
    assert rows[1]["seg"] == pytest.approx(40 / 50)
    assert rows[3]["iou"] == pytest.approx(np.mean([46 / 56, 40 / 50, 1.0]))
    assert "mean" in class_scores.format_class_table(rows)
