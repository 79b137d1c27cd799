"""Score a model like the paper's Tables 1 and 2 (``python -m unet_tutorial evaluate``), and ``predict``.

``evaluate`` takes a saved ``.keras`` model (predicting with overlap-tile, and
test-time augmentation when asked) or a saved prediction file
(:mod:`.predictions`), scores it with :mod:`.metrics` and prints a table in the
paper's form with the paper's published U-Net row beside ours (:mod:`.tables`).
Which images are scored follows :mod:`.splits`: the block the training run held
out (read from ``state.json`` beside the model), never slices that were trained
on without a warning; for the cell tracking sets, the other sequence.

``predict`` writes the class probabilities of a stack in the one prediction
format (:func:`predictions.save_predictions`, atomically) so that they can be
scored later or looked at in the book.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from .config import TileConfig
from .files import write_text_atomic
from .manifest import dataset_names
from .predictions import load_predictions, save_predictions
from .splits import other_sequence, select_images, trained_indices
from .tables import (CHALLENGE_LEADERS_TABLE2, PAPER_TABLE1, PAPER_TABLE2, TABLE1_COLUMNS,  # noqa: F401
                     TABLE2_COLUMNS, PublishedRow, format_table, table1_rows, table2_rows)

__all__ = ["load_model", "predict_stack", "select_slices", "saved_config", "PublishedRow", "PAPER_TABLE1",
           "PAPER_TABLE2", "CHALLENGE_LEADERS_TABLE2", "score_isbi_images", "score_ctc_cells", "score_ctc_probabilities",
           "score_touching_cells", "table1_rows", "table2_rows", "format_table", "add_evaluate_arguments",
           "run_evaluate", "add_predict_arguments", "run_predict"]

select_slices = select_images  # the name this module has always offered


def load_model(path, *, compile: bool = False):
    """Load a ``.keras`` U-Net (the package's layers and loss are registered first).

    ``compile=True`` also restores the optimizer and its state (resuming training).
    """
    import keras

    from . import augment_device, losses, model  # noqa: F401  (registers the custom layers and losses)

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found; train one with `python -m unet_tutorial train`.")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a .keras model file.")
    return keras.saving.load_model(path, compile=compile)


def predict_stack(model, images: np.ndarray, *, tta: bool = False, tile_size=None, batch_size: int = 4,
                  progress: bool = True) -> np.ndarray:
    """(N, H, W, K) float32 class probabilities of each image, by overlap-tile (``tiling.predict_tiled``)."""
    from .tiling import predict_tiled

    indices = range(len(images))
    if progress:
        from tqdm.auto import tqdm
        indices = tqdm(indices, desc="predicting", unit="image")
    return np.stack([predict_tiled(model, images[i], tile_size=tile_size, batch_size=batch_size, tta=tta)
                     for i in indices])


def score_isbi_images(model, images, labels, *, depth: int, padding: str, tta: bool = False):
    """(ISBI scores as a dict, P(membrane) (N, H, W)) of whole images, one whole-image tile each.

    The scoring of the recorded CPU runs and of the recipe study: overlap-tile
    prediction with the tile of ``TileConfig.whole_image``, then
    ``metrics.isbi_scores`` (the challenge's definitions); the dict leaves out the
    list of thresholds swept.
    """
    from .metrics import isbi_scores

    tile = TileConfig.whole_image(images[0].shape, depth, padding).tile_size
    membrane = predict_stack(model, images, tta=tta, tile_size=tile, progress=False)[..., 0]
    scores = isbi_scores(membrane, labels).as_dict()
    return {key: value for key, value in scores.items() if key != "thresholds"}, membrane


def score_ctc_cells(cells, masks, ignore) -> dict:
    """Table 2's scores of numbered cells (N, H, W) against CTC instance masks.

    SEG scores the annotated cells only; the pixel IoU of the cell class leaves
    out ``ignore`` (marked cells without an outline, ``annotations.ignore_regions``).
    """
    from .metrics import iou, seg_score

    return {"seg": float(seg_score(cells, masks)),
            "iou_cell": float(iou(cells > 0, masks > 0, n_classes=2, ignore=ignore)[1])}


def score_touching_cells(cells, masks, markers) -> dict:
    """:func:`score_ctc_cells` and how well touching cells were kept apart, for the studies of chapter 8.

    Adds ``merged_cells`` (true cells that share their predicted cell with
    another true cell, ``metrics.merged_objects``), ``true_cells`` (all
    annotated cells) and ``predicted_cells_per_frame``.

    Args:
        cells: (N, H, W) numbered predicted cells.
        masks, markers: the frames' CTC instance masks and markers (``datasets.load_ctc``).
    """
    from .annotations import ignore_regions
    from .metrics import merged_objects

    masks = np.asarray(masks)
    return {**score_ctc_cells(cells, masks, ignore_regions(masks, markers)),
            "merged_cells": merged_objects(cells, masks),
            "true_cells": int(sum(len(np.unique(mask)) - 1 for mask in masks)),
            "predicted_cells_per_frame": float(len(np.unique(cells)) - 1) / len(masks)}


def score_ctc_probabilities(cell_probability, masks, ignore, *, seed_threshold: float | None = None) -> dict:
    """:func:`score_ctc_cells` of a predicted P(cell) stack (N, H, W).

    Cells are ``metrics.cells_from_probability`` (P(cell) > 0.5; with
    ``seed_threshold``, split by a seeded watershed).
    """
    from .metrics import cells_from_probability

    return score_ctc_cells(cells_from_probability(cell_probability, seed_threshold=seed_threshold), masks, ignore)


# ----------------------------------------------------------------------------- which data
def saved_config(model_path) -> dict | None:
    """The training config saved by ``train`` beside a model (``state.json``), or None when there is none.

    A ``state.json`` that cannot be read is an error, not "no config": without
    it the held-out block cannot be found, and a score on trained slices would
    go unflagged.
    """
    if model_path is None:
        return None
    state = pathlib.Path(model_path).parent / "state.json"
    if not state.is_file():
        return None
    try:
        config = json.loads(state.read_text(encoding="utf-8"))["config"]
        if not isinstance(config, dict):
            raise TypeError(f"'config' is a {type(config).__name__}, not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{state} (the training run's state beside the model) cannot be read ({error}); it says which images "
            "the model was trained on. Restore it, or move the model to a folder of its own and name the images "
            "to score with --slices or --fold."
        ) from error
    return config


def _whole_image_tile(model, config: dict | None, image_shape) -> int | None:
    """A tile size for a model that takes any size: one tile covering the whole image.

    Only when the model has no fixed input size and its training config (depth,
    padding) is known; otherwise ``None`` (the model's own size, or
    ``predict_tiled`` asks for ``--tile-size``).
    """
    if model.input_shape[1] is not None or not config:
        return None
    depth, padding = int(config.get("depth", 5)), str(config.get("padding", "valid"))
    return TileConfig.whole_image(image_shape, depth, padding).tile_size


def _write_tables(rows, columns, csv_path, markdown_path, note: str) -> None:
    if csv_path:
        write_text_atomic(csv_path, format_table(rows, columns, "csv"))
    if markdown_path:
        write_text_atomic(markdown_path, format_table(rows, columns, "markdown") + f"\n{note}\n")


# ----------------------------------------------------------------------------- evaluate
def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=dataset_names(), default="isbi2012", help="which data (default isbi2012)")
    parser.add_argument("--data-dir", default=None, help="folder laid out like ../shared/data (default: datasets.data_dir())")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--slices", default=None, help="comma-separated image indices, e.g. 0,1,2")
    selection.add_argument("--fold", type=int, default=None, help="score block FOLD of --folds contiguous blocks")
    parser.add_argument("--folds", type=int, default=5, help="number of blocks for --fold (default 5, as train)")
    parser.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (test-time augmentation)")
    parser.add_argument("--tile-size", type=int, default=None, help="input tile size (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model PATH.keras | --probabilities PATH`` plus data selection and output options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a .keras model to predict with (overlap-tile)")
    source.add_argument("--probabilities", help="a saved probability stack (.npz from `predict`, or .tif)")
    _common_arguments(parser)
    parser.add_argument("--sequence", default=None,
                        help="cell tracking sets: sequence to score, 01 or 02 (default: the one the model was not trained on, else 02)")
    parser.add_argument("--thresholds", default=None,
                        help="ISBI: comma-separated membrane-probability thresholds (default 0,0.1,...,1 as the challenge)")
    parser.add_argument("--no-warping", action="store_true", help="ISBI: skip the (slowest) warping error")
    parser.add_argument("--warping-count", choices=("splits_and_mergers", "all"), default="splits_and_mergers",
                        help="ISBI: the challenge's warping error counts only split and merger pixels (default); "
                             "'all' counts every mismatch left after warping")
    own = parser.add_argument_group("your own data (instead of --dataset): IoU, Dice and SEG per class")
    own.add_argument("--images", default=None, help="a folder or glob of images (PNG, TIFF, JPEG), with --masks")
    own.add_argument("--masks", default=None, help="a folder or glob of masks with the images' file names (PNG, TIFF)")
    own.add_argument("--class-names", default=None, help="comma-separated names of the classes 0..K-1")
    own.add_argument("--include-trained", action="store_true",
                     help="also score the images the model was trained on (left out by default)")
    parser.add_argument("--csv", default=None, help="also write the table as CSV to this file")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")


def _load_truth(dataset: str, sequence: str, data_dir):
    from . import datasets

    if dataset == "isbi2012":
        data = datasets.load_isbi2012(data_dir)
        return data.images, data.labels, None
    data = datasets.load_ctc(dataset, sequence, data_dir)
    from .annotations import ignore_regions  # noqa: PLC0415 (scipy loads only when data is scored)

    return data.images, data.masks, ignore_regions(data.masks, data.markers)


def _predict(args, images, config: dict | None) -> np.ndarray:
    model = load_model(args.model)
    tile_size = args.tile_size or _whole_image_tile(model, config, images.shape[1:])
    return predict_stack(model, images, tta=args.tta, tile_size=tile_size, batch_size=args.batch_size,
                         progress=not args.quiet)


def _probabilities_for(args, images, indices, config: dict | None = None) -> np.ndarray:
    if args.model:
        return _predict(args, images[indices], config)
    probabilities, file_slices, _ = load_predictions(args.probabilities)
    if file_slices is not None:
        position = {int(s): i for i, s in enumerate(np.asarray(file_slices).tolist())}
        missing = [int(i) for i in indices if int(i) not in position]
        if missing:
            raise ValueError(f"{args.probabilities} holds slices {sorted(position)} but slices {missing} were asked for.")
        return probabilities[[position[int(i)] for i in indices]]
    if len(probabilities) == len(images):
        return probabilities[indices]
    if len(probabilities) == len(indices):
        return probabilities
    raise ValueError(f"{args.probabilities} holds {len(probabilities)} images; expected {len(images)} (the whole "
                     f"stack) or {len(indices)} (the selected ones).")


def run_evaluate(args: argparse.Namespace) -> int:
    if getattr(args, "images", None):  # your own folders: the per-class table
        from .own_data import run_evaluate_folder

        return run_evaluate_folder(args)
    try:
        return _evaluate(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _evaluate(args: argparse.Namespace) -> int:
    from . import metrics  # noqa: PLC0415 (the command line's options load without scipy)

    config = saved_config(args.model)
    fold, folds = args.fold, args.folds
    same_data = bool(config) and config.get("dataset") == args.dataset
    if args.slices is None and fold is None and same_data and args.dataset == "isbi2012" \
            and int(config.get("validation_folds", 1)) > 1:
        # score exactly the block the training run held out
        fold, folds = int(config["validation_fold"]), int(config["validation_folds"])
    sequence = args.sequence
    if sequence is None:
        trained_sequence = str(config.get("sequence")) if same_data else None
        sequence = other_sequence(trained_sequence) if trained_sequence in ("01", "02") else "02"
    images, truth, ignore = _load_truth(args.dataset, sequence, args.data_dir)
    indices, description = select_images(len(images), args.slices, fold, folds)
    probabilities = _probabilities_for(args, images, indices, config)
    truth = truth[indices]
    if probabilities.shape[:3] != truth.shape:
        raise ValueError(f"probabilities have shape {probabilities.shape} but the labels {truth.shape}.")
    seen = sorted(set(indices.tolist()) & trained_indices(config, args.dataset, sequence, len(images)))
    caveat = f"; WARNING: {len(seen)} of these were trained on" if seen else ""
    how = " with TTA" if args.tta else ""

    if args.dataset == "isbi2012":
        membrane = probabilities[..., 0] if probabilities.ndim == 4 else probabilities
        try:
            thresholds = None if args.thresholds is None else [float(t) for t in args.thresholds.split(",")]
        except ValueError:
            raise ValueError(f"--thresholds must be comma-separated numbers in [0, 1], got {args.thresholds!r}.") from None
        scores = metrics.isbi_scores(membrane, truth, thresholds, warping=not args.no_warping,
                                     warping_count=args.warping_count, progress=not args.quiet)
        measured_on = f"ISBI-2012 training {description}{', held out' if config and not seen else ''}{how}{caveat}"
        rows, columns = table1_rows(scores, measured_on), TABLE1_COLUMNS
        title = "Table 1 (Ronneberger et al. 2015): ISBI-2012 EM segmentation, lower errors are better"
        warping_rule = ("Warping error = split and merger pixels left after warping, as the challenge counted them."
                        if args.warping_count == "splits_and_mergers" else
                        "Warping error = every pixel left after warping (--warping-count all, not the challenge's).")
        note = (f"Best membrane-probability thresholds (cell where P(membrane) < t): warping {scores.warping_error_threshold}, "
                f"Rand {scores.rand_error_threshold}, pixel {scores.pixel_error_threshold}. {warping_rule} Pixel error = 1 - max F-score "
                f"of the cell class (min misclassified fraction: {scores.pixel_mismatch:.4f}). The paper's row is the "
                "challenge's hidden test stack; ours is not comparable one-to-one (official test labels are not public).")
        if scores.warping_error is not None and not (membrane < scores.warping_error_threshold).any():
            note += (" Caution: the best warping error comes from predicting no cell at all (each true cell then "
                     "shrinks to one pixel); read it together with the Rand error.")
    else:
        # class probabilities (N, H, W, K): the rule for K classes; a saved (N, H, W) map holds P(class 0)
        cells = (metrics.cells_from_prediction(probabilities) if probabilities.ndim == 4
                 else metrics.cells_from_probability(1.0 - probabilities))
        scores = score_ctc_cells(cells, truth, ignore[indices])
        seg, iou_cell = scores["seg"], scores["iou_cell"]
        trained = f", model trained on {config.get('dataset')} {config.get('sequence')}" if config else ""
        measured_on = f"{args.dataset} sequence {sequence}, {description} (annotated frames){trained}{how}{caveat}"
        rows, columns = table2_rows(args.dataset, seg, iou_cell, measured_on), TABLE2_COLUMNS
        title = f"Table 2 (Ronneberger et al. 2015): cell segmentation IOU on {args.dataset}, higher is better"
        note = ("IOU (SEG) is the cell tracking challenge's SEG (per-object Jaccard, match = more than half of the "
                "true cell); cells are the 4-connected components of P(cell) > 0.5 (a network with a cell-border class: "
                "its interiors grown over the cell pixels, metrics.cells_from_classes). The pixel IoU leaves out marked cells "
                "that have no outline in the ground truth (annotations.ignore_regions). The paper's row is the challenge's "
                "hidden test sequences.")
    print(title)
    print(format_table(rows, columns), end="")
    print(note)
    _write_tables(rows, columns, args.csv, args.markdown, note)
    return 0


# ----------------------------------------------------------------------------- predict
def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model PATH.keras --output PATH.npz|.tif`` plus the data to predict, or ``--images DIR --output DIR``."""
    parser.description = (
        "Predict class probabilities with overlap-tile. Two forms: (1) a dataset or one TIFF stack to one file: "
        "--output X.npz or X.tif; (2) your own images (--images a folder, glob or file) to a folder: --output DIR "
        "(any name without .npz/.tif) gets NAME_mask.png (class indices 0..K-1), NAME_colour.png, "
        "NAME_probabilities.tif (K pages) and NAME_overlay.png per image, any image size.")
    parser.add_argument("--model", required=True, help="a .keras model")
    parser.add_argument("--output", required=True,
                        help="X.npz or X.tif: one file of probabilities; any other name: a folder of PNGs (with --images)")
    _common_arguments(parser)
    parser.add_argument("--split", choices=("train", "test"), default="test",
                        help="ISBI-2012: the training or the test stack (default test)")
    parser.add_argument("--sequence", default="01", help="cell tracking sets: sequence 01 or 02 (default 01)")
    parser.add_argument("--images", default=None,
                        help="predict this TIFF stack (with --output X.npz/.tif) or these images: a folder, glob or "
                             "file (with --output DIR) instead of a dataset")


def run_predict(args: argparse.Namespace) -> int:
    output = pathlib.Path(args.output)
    if args.images and output.suffix.lower() not in (".npz", ".tif", ".tiff"):  # your own images: a folder of PNGs
        from .own_data import run_predict_folder

        return run_predict_folder(args)
    try:
        if output.suffix not in (".npz", ".tif", ".tiff"):
            raise ValueError(f"--output must end in .npz or .tif, got {output} (a folder of PNGs needs --images).")
        if args.images:
            from .datasets import read_tiff

            images, source = read_tiff(args.images), str(args.images)
            images = images[None] if images.ndim == 2 else images
        elif args.dataset == "isbi2012":
            from .datasets import load_isbi2012

            data = load_isbi2012(args.data_dir)
            images, source = (data.test_images if args.split == "test" else data.images), f"isbi2012 {args.split}"
        else:
            images = _load_truth(args.dataset, args.sequence, args.data_dir)[0]
            source = f"{args.dataset} {args.sequence}"
        indices, _ = select_images(len(images), args.slices, args.fold, args.folds)
        probabilities = _predict(args, images[indices], saved_config(args.model))
        save_predictions(output, probabilities, slices=indices, source=source, model=str(args.model), tta=args.tta)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {output}: {probabilities.shape} float32 probabilities (channel 0 = membrane/background)")
    return 0
