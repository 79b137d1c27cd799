"""Score a model like the paper's Tables 1 and 2 (``python -m unet_tutorial evaluate``), and ``predict``.

``evaluate`` takes a saved ``.keras`` model (predicting with overlap-tile, and
test-time augmentation when asked) or a saved probability stack, scores it with
``metrics`` and prints a table in the paper's form with the paper's published
U-Net row beside ours. Each row says what it was measured on: the paper's
numbers come from the challenges' hidden test labels; ours come from held-out
ISBI training slices (k-fold, never slices that were trained on) or, for the
cell tracking sets, from the annotated frames of the other sequence.

``predict`` writes the class probabilities of a stack to ``.npz`` or ``.tif``
(atomically) so that they can be scored later or looked at in the book.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

from . import metrics

CTC_DATASETS = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
DATASETS = ("isbi2012",) + CTC_DATASETS


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    """One row of the paper's Table 1 or 2, with where it was measured."""

    name: str  # group / method as printed in the paper
    values: dict  # metric column -> value
    measured_on: str  # the data the challenge scored it on


# Ronneberger et al. 2015, Table 1 ("Ranking on the EM segmentation challenge
# (march 6th, 2015), sorted by warping error") and Table 2 (cell tracking
# challenge 2015, "IOU"). Only the U-Net rows are listed: they are the ones
# checked against the paper for this package.
PAPER_TABLE1 = (
    PublishedRow("u-net (paper, Table 1)", {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611},
                 "ISBI-2012 test stack, hidden labels, challenge server"),
)
PAPER_TABLE2 = {
    "PhC-C2DH-U373": PublishedRow("u-net (paper, Table 2)", {"seg": 0.9203}, "challenge test sequences, hidden labels"),
    "DIC-C2DH-HeLa": PublishedRow("u-net (paper, Table 2)", {"seg": 0.7756}, "challenge test sequences, hidden labels"),
}
TABLE1_COLUMNS = ("name", "warping_error", "rand_error", "pixel_error", "v_rand", "v_info", "measured_on")
TABLE2_COLUMNS = ("name", "seg", "iou_cell", "measured_on")
_HEADERS = {"name": "Model", "warping_error": "Warping error", "rand_error": "Rand error", "pixel_error": "Pixel error",
            "v_rand": "V_rand", "v_info": "V_info", "seg": "IOU (SEG)", "iou_cell": "pixel IoU (cell)",
            "measured_on": "Measured on"}


# ----------------------------------------------------------------------------- files
def _write_atomic(path: pathlib.Path, write) -> None:
    """Call ``write(temporary_path)`` then move the result onto ``path``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(pathlib.Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def save_probabilities(path, probabilities: np.ndarray, slices=None, **metadata) -> pathlib.Path:
    """Write a (N, H, W, K) float32 probability stack to ``.npz`` (with slice indices) or ``.tif``."""
    path = pathlib.Path(path)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    slices = np.arange(len(probabilities)) if slices is None else np.asarray(slices)
    if path.suffix == ".npz":
        def write(temporary):
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, probabilities=probabilities, slices=slices,
                                    metadata=json.dumps(metadata))
    elif path.suffix in (".tif", ".tiff"):
        import tifffile

        def write(temporary):
            tifffile.imwrite(temporary, probabilities, compression="zlib",
                             metadata={"slices": slices.tolist(), **metadata})
    else:
        raise ValueError(f"cannot write {path}: use a .npz or .tif file name.")
    _write_atomic(path, write)
    return path


def load_probabilities(path) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities, slice indices or None) from a file written by ``predict``.

    ``.npz``: key ``probabilities`` (and ``slices``). ``.tif``: the whole stack,
    (N, H, W) or (N, H, W, K). Values must lie in [0, 1].
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"probability file {path} not found; write one with `python -m unet_tutorial predict`.")
    if path.suffix == ".npz":
        with np.load(path) as data:
            if "probabilities" not in data:
                raise ValueError(f"{path} has no 'probabilities' array (keys: {sorted(data.keys())}).")
            probabilities = data["probabilities"]
            slices = data["slices"] if "slices" in data else None
    elif path.suffix in (".tif", ".tiff"):
        import tifffile

        probabilities, slices = tifffile.imread(path), None
    else:
        raise ValueError(f"cannot read {path}: expected a .npz or .tif probability stack.")
    if probabilities.ndim == 2:
        probabilities = probabilities[None]
    if probabilities.ndim not in (3, 4):
        raise ValueError(f"{path}: expected (N, H, W) or (N, H, W, K) probabilities, got shape {probabilities.shape}.")
    return metrics.check_probabilities(probabilities, str(path)), slices


def load_model(path, *, compile: bool = False):
    """Load a ``.keras`` U-Net (the package's layers and loss are registered first).

    ``compile=True`` also restores the optimizer and its state (resuming training).
    """
    import keras

    from . import losses, model  # noqa: F401  (registers the custom layers and losses)

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


# ----------------------------------------------------------------------------- which data
def select_slices(n: int, slices: str | None = None, fold: int | None = None, folds: int = 5):
    """(indices, description) of the images to score.

    ``slices``: comma-separated indices ("0,1,2"); ``fold``: block ``fold`` of
    ``folds`` contiguous blocks (as ``train.held_out_split``); neither: all.
    """
    if slices is not None and fold is not None:
        raise ValueError("give either --slices or --fold, not both.")
    if slices is not None:
        try:
            indices = np.array(sorted({int(s) for s in slices.split(",") if s.strip()}), dtype=int)
        except ValueError:
            raise ValueError(f"--slices must be comma-separated integers like 0,1,2; got {slices!r}.") from None
        if indices.size == 0 or indices.min() < 0 or indices.max() >= n:
            raise ValueError(f"--slices must name indices in 0..{n - 1}; got {slices!r}.")
        return indices, f"slices {','.join(map(str, indices))}"
    if fold is not None:
        if not 1 <= folds <= n or not 0 <= fold < folds:
            raise ValueError(f"--fold must be in 0..{folds - 1} with --folds between 1 and {n}; got fold {fold} of {folds}.")
        indices = np.array_split(np.arange(n), folds)[fold]
        return indices, f"slices {indices[0]}-{indices[-1]} (fold {fold} of {folds})"
    return np.arange(n), f"all {n} images"


def _training_config(model_path) -> dict | None:
    """The config saved by ``train`` beside a model (state.json), if any."""
    if model_path is None:
        return None
    state = pathlib.Path(model_path).parent / "state.json"
    try:
        return json.loads(state.read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None


# ----------------------------------------------------------------------------- tables
def table1_rows(scores: metrics.ISBIScores, measured_on: str, name: str = "ours") -> list[dict]:
    """The paper's Table 1 rows plus ours (our V scores; the paper has none)."""
    rows = [{"name": row.name, **row.values, "measured_on": row.measured_on} for row in PAPER_TABLE1]
    rows.append({"name": name, "warping_error": scores.warping_error, "rand_error": scores.rand_error,
                 "pixel_error": scores.pixel_error, "v_rand": scores.v_rand, "v_info": scores.v_info,
                 "measured_on": measured_on})
    return rows


def table2_rows(dataset: str, seg: float, iou_cell: float, measured_on: str, name: str = "ours") -> list[dict]:
    row = PAPER_TABLE2[dataset]
    return [{"name": row.name, **row.values, "measured_on": row.measured_on},
            {"name": name, "seg": seg, "iou_cell": iou_cell, "measured_on": measured_on}]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 0.01 else f"{value:.4f}"
    return str(value)


def format_table(rows: list[dict], columns, style: str = "text") -> str:
    """Rows as aligned text, Markdown or CSV ('-' where a row has no value)."""
    headers = [_HEADERS[c] for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if style == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[("" if row.get(c) is None else row.get(c)) for c in columns] for row in rows])
        return buffer.getvalue()
    if style == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines) + "\n"


def _write_tables(rows, columns, csv_path, markdown_path, note: str) -> None:
    if csv_path:
        _write_atomic(pathlib.Path(csv_path), lambda p: p.write_text(format_table(rows, columns, "csv")))
    if markdown_path:
        text = format_table(rows, columns, "markdown") + f"\n{note}\n"
        _write_atomic(pathlib.Path(markdown_path), lambda p: p.write_text(text))


# ----------------------------------------------------------------------------- evaluate
def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="isbi2012", help="which data (default isbi2012)")
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
    parser.add_argument("--csv", default=None, help="also write the table as CSV to this file")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")


def _load_truth(dataset: str, sequence: str, data_dir):
    from . import datasets

    if dataset == "isbi2012":
        data = datasets.load_isbi2012(data_dir)
        return data.images, data.labels
    data = datasets.load_ctc(dataset, sequence, data_dir)
    return data.images, data.masks


def _trained_indices(config: dict | None, dataset: str, sequence: str, n: int) -> set[int]:
    """Indices of ``dataset`` (and sequence) that the run in ``config`` trained on."""
    if not config or config.get("dataset") != dataset:
        return set()
    if dataset != "isbi2012" and str(config.get("sequence")) != sequence:
        return set()
    folds, fold = int(config.get("validation_folds", 1)), int(config.get("validation_fold", 0))
    if folds <= 1:
        return set(range(n))
    held_out = set(np.array_split(np.arange(n), folds)[fold].tolist())
    return set(range(n)) - held_out


def _default_tile_size(model, config: dict | None, image_shape) -> int | None:
    """A tile size for a model that takes any size: one tile covering the whole image.

    Only when the model has no fixed input size and its training config (depth,
    padding) is known; otherwise ``None`` (the model's own size, or
    ``predict_tiled`` asks for ``--tile-size``).
    """
    if model.input_shape[1] is not None or not config:
        return None
    from . import shapes

    depth, padding = int(config.get("depth", 5)), str(config.get("padding", "valid"))
    border = 0 if padding == "same" else shapes.context_border(depth)
    return shapes.nearest_valid_input(max(image_shape[:2]) + 2 * border, depth, padding)[1]


def _predict(args, images, config: dict | None) -> np.ndarray:
    model = load_model(args.model)
    tile_size = args.tile_size or _default_tile_size(model, config, images.shape[1:])
    return predict_stack(model, images, tta=args.tta, tile_size=tile_size, batch_size=args.batch_size,
                         progress=not args.quiet)


def _probabilities_for(args, images, indices, config: dict | None = None) -> np.ndarray:
    if args.model:
        return _predict(args, images[indices], config)
    probabilities, file_slices = load_probabilities(args.probabilities)
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
    try:
        return _evaluate(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _evaluate(args: argparse.Namespace) -> int:
    config = _training_config(args.model)
    fold, folds = args.fold, args.folds
    same_data = bool(config) and config.get("dataset") == args.dataset
    if args.slices is None and fold is None and same_data and args.dataset == "isbi2012" \
            and int(config.get("validation_folds", 1)) > 1:
        # score exactly the block the training run held out
        fold, folds = int(config["validation_fold"]), int(config["validation_folds"])
    sequence = args.sequence
    if sequence is None:
        sequence = ("01" if str(config.get("sequence")) == "02" else "02") if same_data else "02"
    images, truth = _load_truth(args.dataset, sequence, args.data_dir)
    indices, description = select_slices(len(images), args.slices, fold, folds)
    probabilities = _probabilities_for(args, images, indices, config)
    truth = truth[indices]
    if probabilities.shape[:3] != truth.shape:
        raise ValueError(f"probabilities have shape {probabilities.shape} but the labels {truth.shape}.")
    seen = sorted(set(indices.tolist()) & _trained_indices(config, args.dataset, sequence, len(images)))
    caveat = f"; WARNING: {len(seen)} of these were trained on" if seen else ""
    how = " with TTA" if args.tta else ""

    if args.dataset == "isbi2012":
        membrane = probabilities[..., 0] if probabilities.ndim == 4 else probabilities
        try:
            thresholds = None if args.thresholds is None else [float(t) for t in args.thresholds.split(",")]
        except ValueError:
            raise ValueError(f"--thresholds must be comma-separated numbers in [0, 1], got {args.thresholds!r}.") from None
        scores = metrics.isbi_scores(membrane, truth, thresholds, warping=not args.no_warping, progress=not args.quiet)
        measured_on = f"ISBI-2012 training {description}{', held out' if config and not seen else ''}{how}{caveat}"
        rows, columns = table1_rows(scores, measured_on), TABLE1_COLUMNS
        title = "Table 1 (Ronneberger et al. 2015): ISBI-2012 EM segmentation, lower errors are better"
        note = (f"Best membrane-probability thresholds (cell where P(membrane) < t): warping {scores.warping_error_threshold}, "
                f"Rand {scores.rand_error_threshold}, pixel {scores.pixel_error_threshold}. Pixel error = 1 - max F-score "
                f"of the cell class (min misclassified fraction: {scores.pixel_mismatch:.4f}). The paper's row is the "
                "challenge's hidden test stack; ours is not comparable one-to-one (official test labels are not public).")
        if scores.warping_error is not None and not (membrane < scores.warping_error_threshold).any():
            note += (" Caution: the best warping error comes from predicting no cell at all (each true cell then "
                     "shrinks to one pixel); read it together with the Rand error.")
    else:
        cell = probabilities[..., 1] if probabilities.ndim == 4 else 1.0 - probabilities
        instances = metrics.cell_components(cell > 0.5)
        seg = metrics.seg_score(instances, truth)
        iou_cell = float(metrics.iou(instances > 0, truth > 0, n_classes=2)[1])
        trained = f", model trained on {config.get('dataset')} {config.get('sequence')}" if config else ""
        measured_on = f"{args.dataset} sequence {sequence}, {description} (annotated frames){trained}{how}{caveat}"
        rows, columns = table2_rows(args.dataset, seg, iou_cell, measured_on), TABLE2_COLUMNS
        title = f"Table 2 (Ronneberger et al. 2015): cell segmentation IOU on {args.dataset}, higher is better"
        note = ("IOU (SEG) is the cell tracking challenge's SEG (per-object Jaccard, match = more than half of the "
                "true cell); cells are the 4-connected components of P(cell) > 0.5. The paper's row is the challenge's "
                "hidden test sequences.")
    print(title)
    print(format_table(rows, columns), end="")
    print(note)
    _write_tables(rows, columns, args.csv, args.markdown, note)
    return 0


# ----------------------------------------------------------------------------- predict
def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model PATH.keras --output PATH.npz|.tif`` plus the data to predict."""
    parser.add_argument("--model", required=True, help="a .keras model")
    parser.add_argument("--output", required=True, help="where to write the probabilities (.npz or .tif)")
    _common_arguments(parser)
    parser.add_argument("--split", choices=("train", "test"), default="test",
                        help="ISBI-2012: the training or the test stack (default test)")
    parser.add_argument("--sequence", default="01", help="cell tracking sets: sequence 01 or 02 (default 01)")
    parser.add_argument("--images", default=None, help="predict this TIFF stack instead of a dataset")


def run_predict(args: argparse.Namespace) -> int:
    try:
        output = pathlib.Path(args.output)
        if output.suffix not in (".npz", ".tif", ".tiff"):
            raise ValueError(f"--output must end in .npz or .tif, got {output}.")
        if args.images:
            from .datasets import read_tiff

            images, source = read_tiff(args.images), str(args.images)
            images = images[None] if images.ndim == 2 else images
        elif args.dataset == "isbi2012":
            from .datasets import load_isbi2012

            data = load_isbi2012(args.data_dir)
            images, source = (data.test_images if args.split == "test" else data.images), f"isbi2012 {args.split}"
        else:
            images, _ = _load_truth(args.dataset, args.sequence, args.data_dir)
            source = f"{args.dataset} {args.sequence}"
        indices, _ = select_slices(len(images), args.slices, args.fold, args.folds)
        probabilities = _predict(args, images[indices], _training_config(args.model))
        save_probabilities(output, probabilities, slices=indices, source=source, model=str(args.model), tta=args.tta)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {output}: {probabilities.shape} float32 probabilities (channel 0 = membrane/background)")
    return 0
