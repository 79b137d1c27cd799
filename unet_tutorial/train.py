"""Training U-Net on the paper's terms, resumable (``python -m unet_tutorial train``).

Ronneberger et al. 2015, Sec. 3: the weighted cross-entropy (Eq. 1) with the
weight map (Eq. 2), stochastic gradient descent with momentum 0.99 on single
large tiles (batch 1), elastic deformation (Sec. 3.1). Read :func:`train` top to
bottom: load the data and hold out slices, build the tile pipeline and the
network, then ``model.fit`` with four small callbacks (stop on NaN, held-out
pixel error, checkpoint + history, per-epoch seeding).

Files in ``config.output_dir``, each written atomically (temporary file in the
same folder, then ``os.replace``), so a killed run never leaves a half-written
file and never destroys the last good checkpoint:

* ``checkpoint-epochNNNN.keras``: model + optimizer state after epoch NNNN (only
  the newest is kept, and removed only after its successor is complete);
* ``state.json``: which checkpoint is current, the epoch, the config, the history;
* ``history.json`` and ``history.csv``: one row per epoch (loss, held-out pixel
  error, held-out cross-entropy, wall time);
* ``model.keras``: the final model, when training has finished.

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
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import pathlib
import sys
import tempfile
import time
import typing

import keras
import numpy as np

from . import distribute, shapes
from .pipeline import SegmentationDataset, synthetic_cells

__all__ = ["TrainConfig", "PRESETS", "TrainingDivergedError", "train", "held_out_split", "shared_run_dir", "config_from_args", "add_train_arguments", "run_train"]

DATASETS = ("isbi2012", "PhC-C2DH-U373", "DIC-C2DH-HeLa", "circles")
OPTIMIZERS = ("sgd", "adam")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
JIT_COMPILE = ("auto", "true", "false")
DISTRIBUTIONS = distribute.DISTRIBUTIONS  # ("none", "data-parallel")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults: the paper's network and terms."""

    # -- data
    dataset: str = "isbi2012"  # "isbi2012", "PhC-C2DH-U373", "DIC-C2DH-HeLa", or "circles" (synthetic, for tests)
    sequence: str = "01"  # CTC only: the sequence trained on ("01" or "02")
    validation_folds: int = 5  # k of the k-fold split into contiguous blocks; 1 = train on all, no held-out score
    validation_fold: int = 0  # which block is held out (0..k-1); it is never trained on
    # -- network (model.build_unet)
    depth: int = 5  # levels of the U incl. the bottom (paper: 5)
    base_filters: int = 64  # channels of the first level (paper: 64)
    padding: str = "valid"  # "valid" (paper) or "same"
    batch_norm: bool = False  # not in the paper
    dropout: float = 0.5  # at the end of the contracting path (paper Sec. 3.1)
    tile_size: int = 572  # input tile T (paper: 572 -> 388 output)
    # -- optimiser
    optimizer: str = "sgd"  # "sgd" (paper) or "adam"
    learning_rate: float = 0.01  # see PRESETS for the source of each value
    momentum: float = 0.99  # SGD momentum (paper: 0.99, "a high momentum")
    # -- schedule
    batch_size: int = 1  # tiles per step (paper: 1 large tile)
    epochs: int = 50  # total epochs, also after a resume
    steps_per_epoch: int = 200  # batches per epoch (tiles per epoch = steps * batch)
    seed: int = 0  # seeds weights, tiles, augmentation and dropout
    # -- speed
    mixed_precision: str = "none"  # "none", "mixed_float16" or "mixed_bfloat16"
    jit_compile: str = "auto"  # XLA: "auto" (Keras: on for GPU/JAX, off for TF on CPU), "true", "false"
    workers: int = 1  # PyDataset workers preparing batches in parallel
    use_multiprocessing: bool = False  # workers as processes instead of threads
    distribution: str = "none"  # "none" (one device) or "data-parallel" (batch split over all devices; distribute.py)
    num_devices: int = 0  # data-parallel: use the first N devices the backend sees (0 = all)
    # -- weight map (weights.weight_map, paper Eq. 2)
    w0: float = 10.0  # height of the border term
    sigma: float = 5.0  # its width in pixels
    class_balance: bool = True  # w_c = inverse class frequency
    # -- augmentation (augment.augment_sample, paper Sec. 3.1)
    augment: bool = True  # master switch
    elastic: bool = True  # elastic deformation on a coarse grid
    elastic_sigma: float = 10.0  # displacement std in pixels (paper: 10)
    flip: bool = True  # random flips
    rotate: bool = True  # random 90-degree rotations
    intensity: bool = True  # grey-value jitter
    # -- evaluation and output
    validation_tta: bool = False  # average over 8 flips/rotations when scoring held-out slices
    output_dir: str = "runs/unet"  # checkpoints, state and history go here

    def __post_init__(self):
        _check_config(self)

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named preset (see ``PRESETS``) with some fields replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return dataclasses.replace(PRESETS[name], **overrides)


def _check_config(config: TrainConfig) -> None:
    """Clear errors for settings that cannot work."""
    choices = {
        "dataset": DATASETS,
        "optimizer": OPTIMIZERS,
        "mixed_precision": MIXED_PRECISION,
        "jit_compile": JIT_COMPILE,
        "padding": shapes.PADDINGS,
    }
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}.")
    if config.distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution must be one of {DISTRIBUTIONS}, got {config.distribution!r}: 'none' trains on one "
            "device, 'data-parallel' splits each batch over all devices the backend sees."
        )
    if config.num_devices < 0:
        raise ValueError(f"num_devices must be >= 0 (0 = all devices), got {config.num_devices}.")
    if config.num_devices > 1 and config.distribution == "none":
        raise ValueError(
            f"num_devices={config.num_devices} needs distribution='data-parallel' (distribution='none' "
            "trains on one device)."
        )
    for name in ("epochs", "steps_per_epoch", "batch_size", "validation_folds", "workers", "base_filters"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}.")
    if not 0 <= config.validation_fold < config.validation_folds:
        raise ValueError(
            f"validation_fold must be in 0..{config.validation_folds - 1} for validation_folds="
            f"{config.validation_folds}, got {config.validation_fold}."
        )
    if config.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {config.learning_rate}.")
    try:
        shapes.check_input_size(config.tile_size, depth=config.depth, padding=config.padding)
    except ValueError as error:
        raise ValueError(f"tile_size={config.tile_size} is not a valid input size: {error}") from error


PRESETS: dict[str, TrainConfig] = {
    # The paper's network and terms: 572x572 tiles, batch 1, SGD with momentum
    # 0.99 (Sec. 3). The paper gives no learning rate; 0.01 is this package's
    # choice for its mean-per-pixel loss (the Caffe release sums over pixels, so
    # its rate is not directly comparable). 50 x 200 = 10,000 steps.
    "paper": TrainConfig(output_dir="runs/paper"),
    # A free Colab T4 (16 GB) in about 15 minutes: the paper's depth and tile,
    # half the channels (a quarter of the FLOPs), float16 on the tensor cores,
    # 4 tiles per step. 40 x 50 = 2,000 steps.
    "colab": TrainConfig(
        base_filters=32, batch_size=4, learning_rate=0.01, epochs=40, steps_per_epoch=50,
        mixed_precision="mixed_float16", workers=2, output_dir="runs/colab",
    ),
    # Learns visibly on 2 CPU cores in about a minute: 3 levels, 8 channels,
    # 132 -> 92 tiles, no dropout, no elastic deformation (the CPU's time goes to
    # the network). Adam, not the paper's SGD: measured on ISBI (held-out fold 0),
    # SGD with momentum 0.99 at learning rates 0.01-0.1 left the held-out pixel
    # error at its starting value (~0.14) for 200 steps, while Adam 2e-3 brings it
    # to ~0.09. 10 x 20 = 200 steps of 4 tiles.
    "cpu-tiny": TrainConfig(
        depth=3, base_filters=8, tile_size=132, dropout=0.0, batch_size=4, optimizer="adam",
        learning_rate=2e-3, epochs=10, steps_per_epoch=20, elastic=False, output_dir="runs/cpu-tiny",
    ),
}


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------- data


def shared_run_dir(config: "TrainConfig", root=None) -> str:
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


def held_out_split(n: int, folds: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) for fold ``fold`` of ``folds`` contiguous blocks.

    Contiguous blocks, not interleaved slices: neighbouring EM slices look
    alike, so holding out a block scores the network on unseen tissue. With
    ``folds == 1`` everything is trained on and nothing is held out.
    """
    indices = np.arange(n)
    if folds == 1:
        return indices, indices[:0]
    if folds > n:
        raise ValueError(f"validation_folds={folds} is more than the {n} images; use at most {n}.")
    held_out = np.array_split(indices, folds)[fold]
    return np.setdiff1d(indices, held_out), held_out


def _load_data(config: TrainConfig, data_dir=None):
    """(images (N, H, W) uint8 or float, class labels (N, H, W), instances or None)."""
    if config.dataset == "circles":
        images, instances = synthetic_cells(n_images=10, size=128, seed=config.seed)
        return images, (instances > 0).astype(np.uint8), instances
    from . import datasets  # noqa: PLC0415 (datasets imports pipeline; keep the import local)

    if config.dataset == "isbi2012":
        data = datasets.load_isbi2012(data_dir)
        return data.images, data.labels, None  # instances: connected cell components
    from .weights import separate_touching_instances  # noqa: PLC0415

    data = datasets.load_ctc(config.dataset, config.sequence, data_dir)
    instances = np.stack([separate_touching_instances(mask) for mask in data.masks])
    return data.images, (instances > 0).astype(np.uint8), instances


def _validation_tile(config: TrainConfig, image_shape) -> int:
    """Smallest valid input size whose output covers the whole held-out image (one tile)."""
    if config.padding == "same":
        return shapes.nearest_valid_input(max(image_shape[:2]), config.depth, "same")[1]
    border = shapes.context_border(config.depth)
    return shapes.nearest_valid_input(max(image_shape[:2]) + 2 * border, config.depth)[1]


# ----------------------------------------------------------------------------- files


def _write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and os.replace."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes owner-only files
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def _save_model_atomic(model: keras.Model, path: pathlib.Path) -> None:
    temporary = path.parent / f".tmp-{os.getpid()}-{path.name}"  # Keras wants the .keras suffix
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _save_model_and_discard(model: keras.Model) -> None:
    """Take part in saving without keeping the file (the hosts other than the chief).

    With several hosts on JAX, ``model.save`` gathers the weights collectively:
    every process must call it, or the chief waits forever.
    """
    with tempfile.TemporaryDirectory() as folder:
        model.save(pathlib.Path(folder) / "not-kept.keras")


def _history_csv(history: dict) -> str:
    columns = [key for key, value in history.items() if isinstance(value, list)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*(history[column] for column in columns)):
        writer.writerow(row)
    return buffer.getvalue()


def _read_state(output_dir: pathlib.Path) -> dict:
    path = output_dir / "state.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"cannot resume: no checkpoint in {output_dir} ({path.name} not found). Start the run "
            "without --resume, or point --output at the folder of the interrupted run."
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        checkpoint = output_dir / state["checkpoint"]
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"cannot resume: {path} is corrupt ({error}). Delete the folder to start afresh.") from error
    if not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: {path} names {checkpoint.name}, which is missing from {output_dir}.")
    return state


def _load_checkpoint(path: pathlib.Path) -> keras.Model:
    try:
        return keras.saving.load_model(path, compile=True)
    except Exception as error:  # a truncated zip, a damaged weights file, ...
        raise ValueError(
            f"cannot resume: checkpoint {path} cannot be read ({type(error).__name__}: {error}). "
            "It may be truncated or damaged; delete the folder to start afresh."
        ) from error


# ----------------------------------------------------------------------------- callbacks


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers where the loss went bad."""

    def __init__(self):
        super().__init__()
        self.where = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.where is None:
            self.where = (self.epoch + 1, batch + 1, float(loss))
        super().on_batch_end(batch, logs)


class _HeldOutScore(keras.callbacks.Callback):
    """Adds held-out pixel error and cross-entropy to the epoch logs (overlap-tile prediction).

    ``val_pixel_error`` is the challenge's pixel error (1 - F-score of class 1,
    ``metrics.pixel_error``) at the best of the thresholds 0.0, 0.1, ..., 1.0 on
    P(class 0), as the ISBI challenge scores it; ``val_pixel_error_threshold`` is
    that threshold. The weight map makes the network favour class 0 (membrane), so
    a fixed threshold of 0.5 would understate what it has learnt.

    In a data-parallel run the held-out images are scored on one device, by
    ``one_device_copy`` (the same network, built outside the distribution) with
    the trained weights copied in: ``predict_tiled`` sends one tile at a time,
    which cannot be split over several devices.
    """

    THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))

    def __init__(self, images, labels, tile_size, tta, nan_guard, one_device_copy=None, scope=None):
        super().__init__()
        self.images, self.labels, self.tile_size, self.tta = images, labels, tile_size, tta
        self.nan_guard = nan_guard
        self.one_device_copy = one_device_copy
        self.scope = scope or contextlib.nullcontext

    def score(self):
        with self.scope():
            return self._score()

    def _score(self):
        from .metrics import pixel_error  # noqa: PLC0415
        from .tiling import predict_tiled  # noqa: PLC0415

        model = self.model
        if self.one_device_copy is not None:
            self.one_device_copy.set_weights(model.get_weights())
            model = self.one_device_copy
        class0, cross_entropy = [], []
        for image, label in zip(self.images, self.labels):
            probabilities = predict_tiled(model, image, tile_size=self.tile_size, batch_size=1, tta=self.tta)
            class0.append(probabilities[..., 0])
            true_class = np.take_along_axis(probabilities, label[..., None].astype(np.int64), axis=-1)
            cross_entropy.append(-np.log(np.clip(true_class, 1e-7, 1.0)).mean())
        class0, labels = np.stack(class0), np.stack(self.labels)
        errors = [pixel_error((class0 < t).astype(np.uint8), labels) for t in self.THRESHOLDS]
        best = int(np.argmin(errors))
        return {
            "val_pixel_error": float(errors[best]),
            "val_pixel_error_threshold": self.THRESHOLDS[best],
            "val_cross_entropy": float(np.mean(cross_entropy)),
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.nan_guard.where is None:
            logs.update(self.score())


class _Checkpoint(keras.callbacks.Callback):
    """After each good epoch: checkpoint, then state.json, then history files; old checkpoint last.

    With several hosts only the chief (process 0) writes files; the others take
    part in saving the model (see ``_save_model_and_discard``) and keep the history in memory.
    """

    def __init__(self, config, output_dir, history, state_extra, nan_guard, elapsed_before, write=True):
        super().__init__()
        self.config, self.output_dir, self.history = config, output_dir, history
        self.state_extra, self.nan_guard = state_extra, nan_guard
        self.elapsed_before, self.started = elapsed_before, time.perf_counter()
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.nan_guard.where is not None or not all(math.isfinite(float(v)) for v in logs.values()):
            return  # never overwrite the last good checkpoint with a diverged model
        elapsed = self.elapsed_before + time.perf_counter() - self.started
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in sorted(logs.items())}, "elapsed_seconds": round(elapsed, 3)}
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        if not self.write:
            _save_model_and_discard(self.model)
            return
        name = f"checkpoint-epoch{epoch + 1:04d}.keras"
        _save_model_atomic(self.model, self.output_dir / name)
        state = {
            "epoch": epoch + 1,
            "checkpoint": name,
            "config": dataclasses.asdict(self.config),
            "history": self.history,
            "elapsed_seconds": elapsed,
            **self.state_extra,
        }
        _write_atomic(self.output_dir / "state.json", json.dumps(state, indent=1))
        _write_atomic(self.output_dir / "history.json", json.dumps(self.history, indent=1))
        _write_atomic(self.output_dir / "history.csv", _history_csv(self.history))
        for old in self.output_dir.glob("checkpoint-epoch*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)


class _SeedEachEpoch(keras.callbacks.Callback):
    """Reseed Python, numpy and the backend at every epoch start, so a resumed run repeats an uninterrupted one."""

    def __init__(self, seed):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        keras.utils.set_random_seed(self.seed * 10007 + epoch)


# ----------------------------------------------------------------------------- training


def _build_and_compile(config: TrainConfig, channels: int) -> keras.Model:
    from .losses import WeightedCrossEntropy  # noqa: PLC0415
    from .model import build_unet  # noqa: PLC0415

    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision != "none":
        keras.config.set_dtype_policy(config.mixed_precision)
    try:
        # Height and width None: fit on T x T tiles, score held-out images with larger tiles.
        model = build_unet(
            input_shape=(None, None, channels), n_classes=2, base_filters=config.base_filters, depth=config.depth,
            padding=config.padding, dropout=config.dropout, batch_norm=config.batch_norm,
        )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    model.compile(optimizer=optimizer, loss=WeightedCrossEntropy(), jit_compile=jit)
    return model


def _check_resumable(config: TrainConfig, saved: dict) -> None:
    """The run to resume must be the run that was saved (epochs may be raised).

    How the run is spread over devices may change (distribution, num_devices):
    batch_size is the global batch, so the maths stay the same.
    """
    current = dataclasses.asdict(config)
    may_change = ("epochs", "output_dir", "workers", "use_multiprocessing", "distribution", "num_devices")
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

    Returns:
        The history: ``{"epoch": [1, ..., epochs], "loss": [...],
        "val_pixel_error": [...], "val_cross_entropy": [...],
        "elapsed_seconds": [...], "initial_metrics": {...}}`` (held-out scores
        only when ``validation_folds > 1``; ``initial_metrics`` holds them
        before the first step). Also written to ``history.json``/``.csv``.

    Raises:
        TrainingDivergedError: the loss became NaN/inf (the last good checkpoint stays).
        FileNotFoundError/ValueError: nothing (or a damaged checkpoint) to resume,
            a config that differs from the saved run's, bad data, devices that
            do not fit ``distribution`` (e.g. a batch they cannot share equally).
    """
    output_dir = pathlib.Path(config.output_dir)
    state = _read_state(output_dir) if resume else None
    if state is not None:
        _check_resumable(config, state["config"])
    # 0. Devices: one, or all the backend sees with the global batch split over them.
    placement = distribute.placement(config.distribution, config.batch_size, config.num_devices)

    # 1. Data: hold out a block of images, never trained on.
    images, labels, instances = _load_data(config, data_dir)
    train_ids, held_out_ids = held_out_split(len(images), config.validation_folds, config.validation_fold)
    dataset = SegmentationDataset(
        images[train_ids], labels[train_ids], instances=None if instances is None else instances[train_ids],
        tile_size=config.tile_size, depth=config.depth, padding=config.padding, batch_size=config.batch_size,
        tiles_per_epoch=config.steps_per_epoch * config.batch_size, augment=config.augment,
        elastic=config.elastic, flip=config.flip, rotate=config.rotate, intensity=config.intensity,
        elastic_sigma=config.elastic_sigma, w0=config.w0, sigma=config.sigma, class_balance=config.class_balance,
        seed=config.seed, workers=config.workers, use_multiprocessing=config.use_multiprocessing,
    )

    # 2. Network: new (seeded) or from the checkpoint, with its optimizer state;
    #    in a data-parallel run its variables are placed on every device.
    keras.utils.set_random_seed(config.seed)
    with placement.model_scope():
        if state is None:
            model = _build_and_compile(config, channels=dataset.images[0].shape[-1])
            history, initial_epoch, elapsed_before = {}, 0, 0.0
        else:
            model = _load_checkpoint(output_dir / state["checkpoint"])
            history = {key: value[: state["epoch"]] for key, value in state["history"].items()}
            initial_epoch, elapsed_before = int(state["epoch"]), float(state["elapsed_seconds"])
    dataset.set_epoch(initial_epoch)

    # 3. Callbacks: stop on NaN, score held-out images, checkpoint, reseed.
    nan_guard = _StopOnNaN()
    callbacks = [_SeedEachEpoch(config.seed), nan_guard]
    initial_metrics = dict(state.get("initial_metrics", {})) if state else {}
    if len(held_out_ids):
        held_out_images = [np.asarray(image) for image in images[held_out_ids]]
        # Data-parallel: score on a one-device copy (same layers, built outside the distribution).
        one_device_copy = keras.models.clone_model(model) if placement.distributed else None
        scorer = _HeldOutScore(
            held_out_images, list(labels[held_out_ids]), _validation_tile(config, held_out_images[0].shape),
            config.validation_tta, nan_guard, one_device_copy, placement.one_device_scope,
        )
        callbacks.append(scorer)
        scorer.set_model(model)
        if state is None:
            initial_metrics = scorer.score()
    state_extra = {
        "initial_metrics": initial_metrics,
        "held_out": [int(i) for i in held_out_ids],
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "devices": list(placement.devices),
    }
    callbacks.append(
        _Checkpoint(config, output_dir, history, state_extra, nan_guard, elapsed_before, write=placement.is_chief)
    )

    # 4. Fit (data-parallel: each device gets its own slice of every global batch).
    if initial_epoch < config.epochs:
        output_dir.mkdir(parents=True, exist_ok=True)
        with placement.fit_scope():
            model.fit(
                placement.shard(dataset), epochs=config.epochs, initial_epoch=initial_epoch,
                callbacks=callbacks, verbose=verbose,
            )
    if nan_guard.where is not None:
        epoch, batch, loss = nan_guard.where
        last = _read_state(output_dir)["epoch"] if (output_dir / "state.json").is_file() else 0
        raise TrainingDivergedError(
            f"training stopped: the loss became {loss} at epoch {epoch}, batch {batch} "
            f"(learning_rate={config.learning_rate}, optimizer={config.optimizer}). Lower the learning "
            f"rate (or use mixed_precision='none'). The last good checkpoint (epoch {last}) is kept in {output_dir}."
        )
    final = output_dir / "model.keras"
    if history and (initial_epoch < config.epochs or not final.is_file()):
        if placement.is_chief:
            _save_model_atomic(model, final)
        else:
            _save_model_and_discard(model)
    return {**history, "initial_metrics": initial_metrics}


# ----------------------------------------------------------------------------- command line


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset NAME``, ``--resume``, ``--data-dir``, ``--output`` and one ``--field value`` per TrainConfig field."""
    parser.allow_abbrev = False  # --learning would otherwise silently mean --learning-rate
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named preset (default: paper)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    parser.add_argument("--data-dir", default=None, help="folder laid out like ../shared/data (default: datasets.data_dir())")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    group = parser.add_argument_group("config fields (override the preset)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        kind = hints[field.name]
        flags = [f"--{field.name.replace('_', '-')}"] + (["--output"] if field.name == "output_dir" else [])
        group.add_argument(
            *flags, dest=field.name, default=argparse.SUPPRESS, metavar=kind.__name__.upper(),
            type=_parse_bool if kind is bool else kind, help=f"default {field.default!r}",
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that ``--preset`` and the ``--field value`` options describe.

    With ``--resume`` and no ``--preset``, the saved run's config from
    ``state.json`` in ``--output``, with the given fields replaced.
    """
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    overrides = {name: value for name, value in vars(args).items() if name in names}
    if getattr(args, "resume", False) and getattr(args, "preset", None) is None:
        output_dir = pathlib.Path(overrides.get("output_dir", PRESETS["paper"].output_dir))
        saved = _read_state(output_dir)["config"]
        return TrainConfig(**{**saved, **overrides})
    return TrainConfig.preset(getattr(args, "preset", None) or "paper", **overrides)


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
