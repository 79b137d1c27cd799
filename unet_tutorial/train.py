"""Training U-Net on the paper's terms, resumable (``python -m unet_tutorial train``).

Ronneberger et al. 2015, Sec. 3: the weighted cross-entropy (Eq. 1) with the
weight map (Eq. 2), stochastic gradient descent with momentum 0.99 on single
large tiles (batch 1), elastic deformation (Sec. 3.1). Read :func:`train` top to
bottom: load the data and hold out slices, build the tile pipeline and the
network, then ``model.fit`` with small callbacks (stop on NaN, held-out
pixel error, checkpoint + history, per-epoch seeding; on request snapshots and
a time budget).

Files in ``config.output_dir``, each written atomically (temporary file in the
same folder, then ``os.replace``), so a killed run never leaves a half-written
file and never destroys the last good checkpoint:

* ``checkpoint-epochNNNN.keras``: model + optimizer state after epoch NNNN (only
  the newest is kept, and removed only after its successor is complete);
* ``state.json``: which checkpoint is current, the epoch, the config, the history;
* ``history.json`` and ``history.csv``: one row per epoch (loss, held-out pixel
  error, held-out cross-entropy, wall time);
* ``model.keras``: the final model, when training has finished;
* ``snapshots/``: with ``config.snapshot_minutes``, the network each time
  training passes another N minutes, and ``snapshots.json`` with their minutes.

``train(config, resume=True)`` continues from ``state.json`` after the process
was killed, with the same total number of epochs and the optimizer state
(momentum) as saved; the batches of every epoch depend only on (seed, epoch), so
the resumed run sees what an uninterrupted one would have.

Several devices (``distribution="data-parallel"``, see :mod:`.distribute`): the
same run on all GPUs the backend sees, with Keras' own engines
(``keras.distribution.DataParallel`` on JAX, also across hosts;
``tf.distribute.MirroredStrategy`` on TensorFlow, one host). ``batch_size`` stays the
GLOBAL batch, split into equal slices, one per device, so the same config gives
the same maths (loss, gradients, learning rate) on 1 or N devices; nothing is
rescaled. Checkpoints hold plain weights: ``model.keras`` loads on one device,
and a run can be resumed on another number of devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import tempfile
import time

import keras
import numpy as np

from . import distribute
from .augment_device import augmenting_model, network_of, on_device as augment_on_device
from .callbacks import (Checkpoint, HeldOutScore, SeedEachEpoch, Snapshots, StopOnNaN, TimeBudget, budget_spent,
                        longest_epoch, save_model_and_discard)
from .config import FOLDERS_DATASET, PRESETS, SEQUENCES, TileConfig, TrainConfig
from .config_cli import add_train_arguments, config_from_args, read_state
from .files import save_model_atomic
from .pipeline import SegmentationDataset, synthetic_cells
from .splits import held_out_files, held_out_split, run_split

__all__ = ["TrainConfig", "PRESETS", "TrainingDivergedError", "train", "held_out_split", "shared_run_dir",
           "config_from_args", "add_train_arguments", "run_train"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------- data


def shared_run_dir(config: TrainConfig, root=None) -> str:
    """A folder named after ``config``'s settings, for runs that several notebooks share.

    The same settings give the same folder (under ``root``, default the system's
    temporary folder), so a chapter can ``train(config, resume=True)`` a run that
    another chapter, or the other language's edition, has already finished,
    instead of training it again. ``output_dir`` itself is not part of the name,
    and neither is the package's code: delete the folder (or point ``TMPDIR``
    elsewhere, as ``.ci/run`` does) to train afresh after changing it.
    """
    settings = {key: value for key, value in dataclasses.asdict(config).items() if key != "output_dir"}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(root or tempfile.gettempdir(), "unet-tutorial-runs", digest)


def _load_data(config: TrainConfig, data_dir=None):
    """(images (N, H, W) uint8 or float, class labels (N, H, W), instances or None, ignore masks or None)."""
    if config.dataset == FOLDERS_DATASET:  # a user's own images and masks
        from .folders import load_folders  # noqa: PLC0415

        data = load_folders(config.images, config.masks, config.n_classes or None)
        for notice in data.notices:
            print(notice)
        return data.images, data.masks, None, None  # lists: the images may differ in size
    if config.dataset == "circles":
        images, instances = synthetic_cells(n_images=10, size=128, seed=config.seed)
        if config.cell_targets == "border-class":
            return images, *_cell_targets(config, list(instances)), None
        return images, (instances > 0).astype(np.uint8), instances, None
    from . import datasets  # noqa: PLC0415

    if config.dataset == "isbi2012":
        data = datasets.load_isbi2012(data_dir)
        return data.images, data.labels, None, None  # instances: connected cell components
    from .annotations import ignore_regions  # noqa: PLC0415

    images, masks, ignore = [], [], []
    for sequence in (SEQUENCES if config.sequence == "both" else (config.sequence,)):
        data = datasets.load_ctc(config.dataset, sequence, data_dir)
        images += list(data.images)
        masks += list(data.masks)
        ignore += list(ignore_regions(data.masks, data.markers))  # marked cells without an outline
    return np.stack(images), *_cell_targets(config, masks), np.stack(ignore)


def _cell_targets(config: TrainConfig, masks) -> tuple[np.ndarray, np.ndarray]:
    """(class labels, instances) that teach a network to keep touching cells apart (``config.cell_targets``).

    "gap" (the paper, Fig. 3): the pixels where two cells touch become
    background, 2 classes, and the weight map's border term weights the gap.
    "border-class": every cell's outline is a third class (``weights.border_class_labels``).
    """
    from .weights import border_class_labels, separate_touching_instances  # noqa: PLC0415

    if config.cell_targets == "border-class":
        return np.stack([border_class_labels(mask) for mask in masks]), np.stack(masks).astype(np.int32)
    instances = np.stack([separate_touching_instances(mask) for mask in masks])
    return (instances > 0).astype(np.uint8), instances


def _take(items, ids):
    """``items[ids]`` for an array or a list (a user's images may differ in size)."""
    return [items[i] for i in ids] if isinstance(items, list) else items[ids]


def _own_data_state(config: TrainConfig, n_classes: int) -> dict:
    """For dataset "folders": K and the files trained on and held out (by name), for state.json."""
    if config.dataset != FOLDERS_DATASET:
        return {}
    from .folders import paired_names  # noqa: PLC0415

    names = paired_names(config.images, config.masks)
    trained, held_out = held_out_files(names, config.validation_folds, config.validation_fold, config.tuning_block)
    return {"n_classes": n_classes, "trained_files": trained, "held_out_files": held_out}


def _load_checkpoint(path: pathlib.Path) -> keras.Model:
    from .evaluate import load_model  # noqa: PLC0415 (registers the package's layers and loss first)

    try:
        return load_model(path, compile=True)
    except Exception as error:  # a truncated zip, a damaged weights file, ...
        raise ValueError(
            f"cannot resume: checkpoint {path} cannot be read ({type(error).__name__}: {error}). "
            "It may be truncated or damaged; delete the folder to start afresh."
        ) from error


# ----------------------------------------------------------------------------- training


ONE_CYCLE_WARMUP = 0.3  # share of the steps that the one-cycle schedule rises (PyTorch OneCycleLR's pct_start)
ONE_CYCLE_START = 1 / 25  # where it starts, as a share of the peak (OneCycleLR's div_factor 25)


def learning_rate_schedule(config: TrainConfig):
    """The learning rate of ``config.lr_schedule``: a number, or a Keras schedule of the step.

    A schedule is saved with the optimizer, so a resumed run goes on along the same curve.
    Both decays end at 1 % of ``config.learning_rate`` after ``epochs x steps_per_epoch`` steps.
    """
    steps = config.epochs * config.steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.01)
    if config.lr_schedule == "one-cycle":  # Smith & Topin (2019): a linear rise, then the cosine decay
        warmup_steps = max(1, round(ONE_CYCLE_WARMUP * steps))
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate * ONE_CYCLE_START, decay_steps=max(1, steps - warmup_steps), alpha=0.01,
            warmup_target=config.learning_rate, warmup_steps=warmup_steps)
    return config.learning_rate


def _build_and_compile(config: TrainConfig, channels: int, n_classes: int = 2, on_device: bool = False
                       ) -> keras.Model:
    """The U-Net, compiled; ``on_device``: inside ``augment_device.augmenting_model``, which holds the loss."""
    from .losses import WeightedCrossEntropy  # noqa: PLC0415
    from .model import build_unet  # noqa: PLC0415

    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision != "none":
        keras.config.set_dtype_policy(config.mixed_precision)
    try:
        # Height and width None: fit on T x T tiles, score held-out images with larger tiles.
        model = build_unet(
            input_shape=(None, None, channels), n_classes=n_classes, base_filters=config.base_filters, depth=config.depth,
            padding=config.padding, dropout=config.dropout, batch_norm=config.batch_norm,
            upconv_init=config.upconv_init,
        )
        if on_device:  # under the same policy: float16 training scales its loss (the augmentation stays float32)
            model = augmenting_model(model, config.tiles, config.augmentation, seed=config.seed)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    learning_rate = learning_rate_schedule(config)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.momentum)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    model.compile(optimizer=optimizer, loss=None if on_device else WeightedCrossEntropy(), jit_compile=jit)
    return model


def _check_resumable(config: TrainConfig, saved: dict) -> None:
    """The run to resume must be the run that was saved (epochs may be raised).

    How the run is spread over devices may change (distribution, num_devices):
    batch_size is the global batch, so the maths stay the same.
    """
    current = dataclasses.asdict(config)
    # A field the saved run does not name did not exist yet: it had the default value.
    saved = {field.name: field.default for field in dataclasses.fields(TrainConfig)} | saved
    may_change = ("epochs", "output_dir", "workers", "use_multiprocessing", "distribution", "num_devices",
                  "time_budget_s", "snapshot_minutes")
    differing = [
        f"{key}: saved {saved.get(key)!r}, now {value!r}"
        for key, value in current.items()
        if key not in may_change and saved.get(key) != value
    ]
    if differing:
        raise ValueError(
            "cannot resume: the config differs from the saved run's (" + "; ".join(differing) + "). "
            "Resume with the same settings (the CLI reads them from state.json when no --preset is given)."
        )


def train(config: TrainConfig, resume: bool = False, *, data_dir=None, verbose="auto") -> dict:
    """Train U-Net with ``config``; checkpoint and log every epoch.

    Args:
        config: a :class:`TrainConfig` (e.g. ``TrainConfig.preset("cpu-tiny")``).
        resume: continue from the last checkpoint in ``config.output_dir``
            (model, optimizer state, epoch count, history).
        data_dir: folder holding the datasets (``datasets.data_dir``).
        verbose: Keras ``fit`` verbosity ("auto": a progress bar).

    With ``config.time_budget_s > 0`` training stops at the end of the first
    epoch after which the next would pass the budget (seconds of training,
    the time before a resume included);
    that epoch's checkpoint stays, ``--resume`` continues from it, and the
    history returned ends there.

    Returns:
        The history: ``{"epoch": [1, ..., epochs], "loss": [...],
        "val_pixel_error": [...], "val_cross_entropy": [...],
        "elapsed_seconds": [...], "initial_metrics": {...}}`` (held-out scores
        only when ``validation_folds > 1``, of the tuning block with
        ``tuning_block``; ``initial_metrics`` holds them
        before the first step). Also written to ``history.json``/``.csv``.

    Raises:
        TrainingDivergedError: the loss became NaN/inf (the last good checkpoint stays).
        FileNotFoundError/ValueError: nothing (or a damaged checkpoint) to resume,
            a config that differs from the saved run's, bad data, devices that
            do not fit ``distribution`` (e.g. a batch they cannot share equally).
    """
    started = time.perf_counter()  # config.time_budget_s counts from here
    output_dir = pathlib.Path(config.output_dir)
    state = read_state(output_dir) if resume else None
    if state is not None:
        _check_resumable(config, state["config"])
    # 0. Devices: one, or all the backend sees with the global batch split over them.
    placement = distribute.placement(config.distribution, config.batch_size, config.num_devices)

    # 1. Data: hold out a block of images, never trained on (and, to choose settings, a tuning block).
    #    The augmentation runs in the pipeline's workers, or on a GPU inside the train step.
    images, labels, instances, ignore = _load_data(config, data_dir)
    if state and "augmented_on" in state:  # a resumed run keeps where its checkpoint augments
        on_device = state["augmented_on"] == "device"
    else:
        on_device = augment_on_device(config.augmentation)
    n_classes = config.n_classes or max(2, 1 + max(int(np.max(label)) for label in labels))  # K
    train_ids, scored_ids, held_out_ids = run_split(len(images), config.validation_folds, config.validation_fold,
                                                    config.tuning_block)
    dataset = SegmentationDataset(
        _take(images, train_ids), _take(labels, train_ids), instances=None if instances is None else instances[train_ids],
        ignore=None if ignore is None else ignore[train_ids],
        tiles=config.tiles, augmentation=config.augmentation, weighting=config.weighting,
        batch_size=config.batch_size, tiles_per_epoch=config.steps_per_epoch * config.batch_size, n_classes=n_classes,
        seed=config.seed, on_device=on_device, workers=config.workers,
        use_multiprocessing=config.use_multiprocessing,
    )

    # 2. Network: new (seeded) or from the checkpoint, with its optimizer state;
    #    in a data-parallel run its variables are placed on every device.
    keras.utils.set_random_seed(config.seed)
    with placement.model_scope():
        if state is None:
            model = _build_and_compile(config, channels=dataset.images[0].shape[-1], n_classes=n_classes,
                                       on_device=on_device)
            history, initial_epoch, elapsed_before = {}, 0, 0.0
        else:
            model = _load_checkpoint(output_dir / state["checkpoint"])
            history = {key: value[: state["epoch"]] for key, value in state["history"].items()}
            initial_epoch, elapsed_before = int(state["epoch"]), float(state["elapsed_seconds"])
    dataset.set_epoch(initial_epoch)
    network = network_of(model)  # the U-Net (model itself, or inside it when the device augments)

    # 3. Callbacks: reseed, stop on NaN, score held-out images, checkpoint, snapshots, time budget.
    nan_guard = StopOnNaN()
    callbacks = [SeedEachEpoch(config.seed), nan_guard]
    initial_metrics = dict(state.get("initial_metrics", {})) if state else {}
    if len(scored_ids):
        scorer = _held_out_scorer(config, network, placement, _take(images, scored_ids), _take(labels, scored_ids),
                                  nan_guard)
        callbacks.append(scorer)
        if state is None:
            initial_metrics = scorer.score()
    state_extra = {
        "initial_metrics": initial_metrics,
        "held_out": [int(i) for i in held_out_ids],
        "scored_each_epoch": [int(i) for i in scored_ids],  # = held_out, or the tuning block
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "devices": list(placement.devices),
        "augmented_on": "device" if on_device else "cpu pipeline",
        **_own_data_state(config, n_classes),
    }
    callbacks.append(
        Checkpoint(config, output_dir, history, state_extra, nan_guard, elapsed_before, write=placement.is_chief)
    )
    if config.snapshot_minutes > 0:  # copies of the network for a held-out curve scored after training
        callbacks.append(Snapshots(network, output_dir, config.snapshot_minutes, history, write=placement.is_chief))
    if config.time_budget_s > 0:  # after Checkpoint: the last finished epoch is saved before fit stops
        # the training before a resume counts, and its longest epoch predicts the next
        callbacks.append(TimeBudget(config.time_budget_s, started - elapsed_before, longest_epoch(history)))

    # 4. Fit (data-parallel: each device gets its own slice of every global batch); a resumed run whose
    #    time budget is used up trains no more.
    if initial_epoch < config.epochs and not budget_spent(history, config.time_budget_s):
        output_dir.mkdir(parents=True, exist_ok=True)
        with placement.fit_scope():
            model.fit(
                placement.shard(dataset), epochs=config.epochs, initial_epoch=initial_epoch,
                callbacks=callbacks, verbose=verbose,
            )
    if nan_guard.where is not None:
        raise _diverged(config, nan_guard.where, output_dir)
    final = output_dir / "model.keras"
    if history and (initial_epoch < config.epochs or not final.is_file()):
        if placement.is_chief:
            save_model_atomic(network, final)
        else:
            save_model_and_discard(network)
    return {**history, "initial_metrics": initial_metrics}


def _held_out_scorer(config: TrainConfig, model, placement, images, labels, nan_guard) -> HeldOutScore:
    """The callback that scores the held-out images, one whole-image tile each (``TileConfig.whole_image``).

    Data-parallel: it scores on a one-device copy (same layers, built outside the distribution).
    """
    images = [np.asarray(image) for image in images]
    tile = TileConfig.whole_image(images[0].shape, config.depth, config.padding)
    one_device_copy = keras.models.clone_model(model) if placement.distributed else None
    scorer = HeldOutScore(images, list(labels), tile.tile_size, config.validation_tta, nan_guard,
                          one_device_copy, placement.one_device_scope, network=model)
    scorer.set_model(model)
    return scorer


def _diverged(config: TrainConfig, where, output_dir: pathlib.Path) -> TrainingDivergedError:
    epoch, batch, loss = where
    last = read_state(output_dir)["epoch"] if (output_dir / "state.json").is_file() else 0
    return TrainingDivergedError(
        f"training stopped: the loss became {loss} at epoch {epoch}, batch {batch} "
        f"(learning_rate={config.learning_rate}, optimizer={config.optimizer}). Lower the learning "
        f"rate (or use mixed_precision='none'). The last good checkpoint (epoch {last}) is kept in {output_dir}."
    )


# ----------------------------------------------------------------------------- command line


def run_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        history = train(config, resume=args.resume, data_dir=args.data_dir, verbose=2 if args.quiet else "auto")
    except (ValueError, FileNotFoundError, TrainingDivergedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    last = {key: values[-1] for key, values in history.items() if isinstance(values, list) and values}
    print(f"done: {json.dumps(last)}; files in {config.output_dir}")
    return 0
