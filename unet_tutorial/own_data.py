"""Your own data from Python and the command line: train on folders, score a model per class, predict to PNGs.

* :func:`folder_config` / :func:`train_folders`: a :class:`config.TrainConfig`
  for dataset ``"folders"`` and the training run (``train.train``), from a folder
  (or glob) of images and one of masks;
* :func:`evaluate_folders`: IoU, Dice and SEG per class (:mod:`.class_scores`)
  on the images the run held out when the folder is the one it trained on;
* ``run_predict_folder`` / ``run_evaluate_folder``: ``predict`` and
  ``evaluate`` with ``--images DIR_OR_GLOB`` (writing :mod:`.predict_folder`'s files).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from .config import FOLDERS_DATASET, TrainConfig

__all__ = ["folder_config", "train_folders", "trained_files", "evaluate_folders", "run_predict_folder",
           "run_evaluate_folder"]


def folder_config(images, masks, n_classes: int | None = None, preset: str = "cpu-tiny", **overrides) -> TrainConfig:
    """The TrainConfig of a run on your own folders: ``preset`` with dataset "folders" and ``overrides``."""
    return TrainConfig.preset(preset, dataset=FOLDERS_DATASET, images=str(images), masks=str(masks),
                              n_classes=int(n_classes or 0), **overrides)


def train_folders(images, masks, n_classes: int | None = None, preset: str = "cpu-tiny", *, resume: bool = False,
                  verbose="auto", **overrides) -> dict:
    """Train on a folder of images and one of masks (see :func:`folder_config`); returns the history of ``train``.

    A block of files (by name) is held out for the held-out score; ``state.json``
    in ``output_dir`` names them (``held_out_files``) and K (``n_classes``).
    """
    from .train import train

    return train(folder_config(images, masks, n_classes, preset, **overrides), resume=resume, verbose=verbose)


def _read_state(model_path) -> dict:
    path = pathlib.Path(model_path).parent / "state.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} (the training run's state beside the model) cannot be read ({error}); restore it, "
                         "or move the model to a folder of its own.") from error


def trained_files(model_path, images) -> list[str]:
    """The names in ``images`` that the run beside ``model_path`` trained on (none when it trained on other files)."""
    state = _read_state(model_path)
    config = state.get("config", {})
    if config.get("dataset") != FOLDERS_DATASET or "trained_files" not in state:
        return []
    same = str(config.get("images")) == str(images) or pathlib.Path(str(config.get("images"))).resolve() == \
        pathlib.Path(str(images)).resolve()
    return list(state["trained_files"]) if same else []


def evaluate_folders(model, images, masks, *, model_path=None, class_names=None, include_trained: bool = False,
                     tile_size: int | None = None, tta: bool = False) -> tuple[list[dict], str]:
    """(rows of ``class_scores.per_class_scores``, which images were scored) for ``model`` on folders.

    Images the model was trained on (``state.json`` beside ``model_path``) are
    left out unless ``include_trained``; the masks must hold classes 0..K-1 of
    the model's K output channels.
    """
    from .class_scores import per_class_scores
    from .folders import load_folders
    from .predict_folder import prediction_tile_size
    from .tiling import predict_tiled

    n_classes = int(model.output_shape[-1])
    data = load_folders(images, masks, n_classes)
    for notice in data.notices:
        print(notice)
    seen = set(trained_files(model_path, images)) if model_path else set()
    chosen = [i for i, name in enumerate(data.names) if include_trained or name not in seen]
    if not chosen:
        raise ValueError(f"every image in {images} was trained on (state.json beside {model_path}); score other "
                         "images, or pass --include-trained to score them anyway (the score will flatter the model).")
    predicted = []
    for i in chosen:
        tile = tile_size or prediction_tile_size(model, data.images[i].shape)
        predicted.append(predict_tiled(model, data.images[i], tile_size=tile, tta=tta).argmax(-1))
    rows = per_class_scores(predicted, [data.masks[i] for i in chosen], n_classes, class_names)
    trained_in = len([i for i in chosen if data.names[i] in seen])
    described = f"{len(chosen)} of {len(data.names)} images"
    if seen and not include_trained:
        described += f" (the {len(data.names) - len(chosen)} the model trained on are left out)"
    elif trained_in:
        described += f"; WARNING: {trained_in} of them were trained on"
    return rows, described


# ----------------------------------------------------------------------------- command line


def _load(args):
    from .evaluate import load_model

    return load_model(args.model)


def run_predict_folder(args: argparse.Namespace) -> int:
    """``predict --model M --images DIR_OR_GLOB --output DIR``: four files per image into DIR."""
    from .predict_folder import predict_folder

    try:
        model = _load(args)
        written = predict_folder(model, args.images, args.output, tile_size=args.tile_size, tta=args.tta,
                                 batch_size=args.batch_size, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} image(s) x 4 files (NAME_mask.png, NAME_colour.png, NAME_probabilities.tif, "
          f"NAME_overlay.png) to {args.output}")
    return 0


def run_evaluate_folder(args: argparse.Namespace) -> int:
    """``evaluate --model M --images DIR_OR_GLOB --masks DIR_OR_GLOB``: the per-class table."""
    from .class_scores import format_class_table

    try:
        if not args.model or not args.masks:
            raise ValueError("scoring your own images needs --model M --images DIR --masks DIR.")
        model = _load(args)
        names = args.class_names.split(",") if args.class_names else None
        rows, described = evaluate_folders(model, args.images, args.masks, model_path=args.model, class_names=names,
                                           include_trained=args.include_trained, tile_size=args.tile_size, tta=args.tta)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Scores per class on {described} in {args.images}")
    print(format_class_table(rows), end="")
    print("IoU = |P ∩ T| / |P ∪ T|, Dice = 2|P ∩ T| / (|P| + |T|) over all scored pixels; the mean row averages the "
          "classes. SEG: per object (connected components of each class), as the cell tracking challenge.")
    return 0

