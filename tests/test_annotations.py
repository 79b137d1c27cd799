"""Partial CTC annotations: marked cells without a SEG outline are ignored in training and in the pixel IoU."""

from __future__ import annotations

import numpy as np
import pytest

from unet_tutorial import annotations, metrics
from unet_tutorial.config import AugmentConfig, TileConfig
from unet_tutorial.pipeline import SegmentationDataset


def _frame():
    """Two outlined cells (SEG 1, 2) and three markers: two on them, one (label 9) on an unannotated cell."""
    mask = np.zeros((40, 60), np.int32)
    mask[5:15, 5:15] = 1
    mask[25:35, 5:15] = 2
    marker = np.zeros_like(mask)
    marker[9:11, 9:11] = 4
    marker[29:31, 9:11] = 5
    marker[19:21, 44:46] = 9
    return mask, marker


def test_unannotated_markers_are_found_and_counted():
    mask, marker = _frame()
    assert annotations.unannotated_markers(mask, marker) == [9]
    assert annotations.count_unannotated(np.stack([mask, mask]), np.stack([marker, marker])) == (6, 2)


def test_the_ignored_region_covers_the_cell_and_never_an_outlined_one():
    mask, marker = _frame()
    ignore = annotations.ignore_regions(mask, marker)
    assert ignore[19:21, 44:46].all()  # the marker itself
    assert not (ignore & (mask > 0)).any()
    # a disc as large as the median outlined cell (area 100, radius ~5.6 px) around the marker
    assert 80 <= ignore.sum() <= 120
    assert not ignore[:, :30].any()
    with pytest.raises(ValueError, match="one shape"):
        annotations.ignore_regions(mask, marker[:, :10])


def test_ignored_pixels_get_weight_zero_in_training():
    mask, marker = _frame()
    images = np.random.default_rng(0).random((1, 40, 60)).astype(np.float32)
    ignore = annotations.ignore_regions(mask, marker)[None]
    dataset = SegmentationDataset(images, (mask > 0)[None].astype(np.uint8), instances=mask[None],
                                  ignore=ignore, tiles=TileConfig(36, 2), augmentation=AugmentConfig(enabled=False))
    assert np.all(dataset.weights[0][ignore[0]] == 0)
    assert np.all(dataset.weights[0][~ignore[0]] > 0)


def test_pixel_iou_leaves_out_ignored_pixels():
    mask, marker = _frame()
    ignore = annotations.ignore_regions(mask, marker)
    predicted = (mask > 0) | ignore  # right on the outlined cells, and finds the unannotated one too
    assert metrics.iou(predicted, mask > 0, n_classes=2)[1] < 1.0  # counted as false positives without it
    assert metrics.iou(predicted, mask > 0, n_classes=2, ignore=ignore)[1] == 1.0


@pytest.mark.integration
def test_real_sequences_have_the_counts_of_their_markers(shared_data):
    from unet_tutorial import datasets

    expected = {("DIC-C2DH-HeLa", "01"): (115, 17), ("DIC-C2DH-HeLa", "02"): (103, 6),
                ("PhC-C2DH-U373", "01"): (100, 0), ("PhC-C2DH-U373", "02"): (115, 5)}
    for (name, sequence), counts in expected.items():
        data = datasets.load_ctc(name, sequence, shared_data)
        assert data.markers.shape == data.masks.shape and data.markers.dtype == np.int32
        assert annotations.count_unannotated(data.masks, data.markers) == counts
