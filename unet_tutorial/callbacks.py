"""The small Keras callbacks of ``train``: stop on NaN, score held-out images, checkpoint, snapshots, reseed, time budget.

Each does one thing at an epoch (or batch) boundary, so :func:`train.train` can
be read top to bottom as data, network, callbacks, ``model.fit``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import pathlib
import tempfile
import time

import keras
import numpy as np

from .files import save_model_atomic, write_json_atomic, write_text_atomic

__all__ = ["StopOnNaN", "HeldOutScore", "Checkpoint", "Snapshots", "read_snapshots", "SeedEachEpoch", "TimeBudget",
           "budget_spent", "longest_epoch", "history_csv", "save_model_and_discard"]


def save_model_and_discard(model: keras.Model) -> None:
    """Take part in saving without keeping the file (the hosts other than the chief).

    With several hosts on JAX, ``model.save`` gathers the weights collectively:
    every process must call it, or the chief waits forever.
    """
    with tempfile.TemporaryDirectory() as folder:
        model.save(pathlib.Path(folder) / "not-kept.keras")


def history_csv(history: dict) -> str:
    """The per-epoch history as CSV text, one row per epoch.

    Written from the history that ``state.json`` holds (not appended epoch by
    epoch like ``keras.callbacks.CSVLogger``), so a resumed run's file never
    repeats the epochs between the last checkpoint and the interruption.
    """
    columns = [key for key, value in history.items() if isinstance(value, list)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*(history[column] for column in columns)):
        writer.writerow(row)
    return buffer.getvalue()


class StopOnNaN(keras.callbacks.TerminateOnNaN):
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


class HeldOutScore(keras.callbacks.Callback):
    """Adds held-out pixel error and cross-entropy to the epoch logs (overlap-tile prediction).

    ``val_pixel_error`` is the challenge's pixel error (1 - F-score of class 1,
    ``metrics.pixel_error``) at the best of the challenge's thresholds on
    P(class 0) (``metrics.best_pixel_error``), as the ISBI challenge scores it;
    ``val_pixel_error_threshold`` is that threshold. The weight map makes the
    network favour class 0 (membrane), so a fixed threshold of 0.5 would
    understate what it has learnt. With more than two classes there is no
    threshold to sweep: ``val_pixel_error`` is then the fraction of pixels whose
    most probable class is wrong.

    In a data-parallel run the held-out images are scored on one device, by
    ``one_device_copy`` (the same network, built outside the distribution) with
    the trained weights copied in: ``predict_tiled`` sends one tile at a time,
    which cannot be split over several devices.

    ``network``: the model to score when it is not the model being trained
    (the U-Net inside ``augment_device.augmenting_model``).
    """

    def __init__(self, images, labels, tile_size, tta, nan_guard, one_device_copy=None, scope=None, network=None):
        super().__init__()
        self.images, self.labels, self.tile_size, self.tta = images, labels, tile_size, tta
        self.nan_guard = nan_guard
        self.one_device_copy = one_device_copy
        self.scope = scope or contextlib.nullcontext
        self.network = network

    def score(self):
        with self.scope():
            return self._score()

    def _score(self):
        from .metrics import best_pixel_error  # noqa: PLC0415
        from .tiling import predict_tiled  # noqa: PLC0415

        model = self.network or self.model
        if self.one_device_copy is not None:
            self.one_device_copy.set_weights(model.get_weights())
            model = self.one_device_copy
        class0, cross_entropy, wrong = [], [], []
        for image, label in zip(self.images, self.labels):
            probabilities = predict_tiled(model, image, tile_size=self.tile_size, batch_size=1, tta=self.tta)
            class0.append(probabilities[..., 0])
            wrong.append((probabilities.argmax(-1) != label).ravel())
            true_class = np.take_along_axis(probabilities, label[..., None].astype(np.int64), axis=-1)
            cross_entropy.append(-np.log(np.clip(true_class, 1e-7, 1.0)).mean())
        if probabilities.shape[-1] > 2:  # K classes: the most probable class
            return {"val_pixel_error": float(np.concatenate(wrong).mean()),
                    "val_cross_entropy": float(np.mean(cross_entropy))}
        # all held-out pixels as one (1, n) map: the pixel error counts pixels, and images may differ in size
        joined = [np.concatenate([array.ravel() for array in arrays])[None] for arrays in (class0, self.labels)]
        error, threshold = best_pixel_error(*joined)
        return {
            "val_pixel_error": error,
            "val_pixel_error_threshold": threshold,
            "val_cross_entropy": float(np.mean(cross_entropy)),
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.nan_guard.where is None:
            logs.update(self.score())


class Checkpoint(keras.callbacks.Callback):
    """After each good epoch: checkpoint, then state.json, then history files; old checkpoint last.

    With several hosts only the chief (process 0) writes files; the others take
    part in saving the model (see :func:`save_model_and_discard`) and keep the history in memory.
    """

    def __init__(self, config, output_dir, history, state_extra, nan_guard, elapsed_before, write=True):
        super().__init__()
        self.config, self.output_dir, self.history = config, pathlib.Path(output_dir), history
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
            save_model_and_discard(self.model)
            return
        name = f"checkpoint-epoch{epoch + 1:04d}.keras"
        save_model_atomic(self.model, self.output_dir / name)
        state = {
            "epoch": epoch + 1,
            "checkpoint": name,
            "config": dataclasses.asdict(self.config),
            "history": self.history,
            "elapsed_seconds": elapsed,
            **self.state_extra,
        }
        write_json_atomic(self.output_dir / "state.json", state)
        write_json_atomic(self.output_dir / "history.json", self.history)
        write_text_atomic(self.output_dir / "history.csv", history_csv(self.history))
        for old in self.output_dir.glob("checkpoint-epoch*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)


SNAPSHOTS = "snapshots"  # the folder in a run's output_dir, with snapshots.json naming each file's training minutes


def read_snapshots(output_dir) -> list[tuple[float, pathlib.Path]]:
    """(minutes of training, file) of each snapshot a run kept (:class:`Snapshots`), earliest first; [] when none."""
    folder = pathlib.Path(output_dir) / SNAPSHOTS
    index = folder / "snapshots.json"
    if not index.is_file():
        return []
    saved = json.loads(index.read_text())
    return sorted((float(minutes), folder / name) for name, minutes in saved.items())


class Snapshots(keras.callbacks.Callback):
    """Keeps a copy of the network each time training passes another ``every_minutes`` (resumes included).

    Runs after :class:`Checkpoint`, whose row in ``history`` gives the epoch's
    training time, so a snapshot's minutes are those of its epoch in the history.

    For a curve of held-out quality against training minutes that is scored
    after training, outside its time budget (SEG on a whole sequence takes too
    long to score every epoch). A snapshot is named by the multiple of
    ``every_minutes`` it passed (``snapshot-0003.keras``): a resumed run that
    passes a multiple again (its checkpoint was older than the snapshot)
    replaces that snapshot rather than adding a second one; ``snapshots.json``
    holds each file's measured minutes.
    """

    def __init__(self, network, output_dir, every_minutes: float, history: dict, write=True):
        super().__init__()
        self.network, self.folder = network, pathlib.Path(output_dir) / SNAPSHOTS
        self.every_s, self.history, self.write = every_minutes * 60, history, write
        before = history.get("elapsed_seconds") or [0.0]
        self.passed = math.floor(before[-1] / self.every_s)  # multiples passed before this fit

    def on_epoch_end(self, epoch, logs=None):
        recorded = self.history.get("elapsed_seconds") or []
        if len(recorded) != epoch + 1:
            return  # Checkpoint did not record this epoch (the loss diverged)
        elapsed = recorded[-1]  # the epoch's training time, as the history has it
        passed = math.floor(elapsed / self.every_s)
        if passed <= self.passed:
            return
        self.passed = passed
        if not self.write:
            save_model_and_discard(self.network)
            return
        name = f"snapshot-{passed:04d}.keras"  # the multiple of every_minutes passed
        save_model_atomic(self.network, self.folder / name)
        index = {path.name: minutes for minutes, path in read_snapshots(self.folder.parent)}
        write_json_atomic(self.folder / "snapshots.json", {**index, name: round(elapsed / 60, 3)})


class SeedEachEpoch(keras.callbacks.Callback):
    """Reseed Python, numpy and the backend at every epoch start, so a resumed run repeats an uninterrupted one."""

    def __init__(self, seed):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        keras.utils.set_random_seed(self.seed * 10007 + epoch)


def _next_epoch_passes(used: float, longest_epoch: float, seconds: float) -> bool:
    """The rule of the time budget: stop when one more epoch, as long as the longest so far, would end past it."""
    return used + longest_epoch > seconds


def longest_epoch(history: dict) -> float:
    """Seconds of the longest epoch of a saved run (its per-epoch ``elapsed_seconds``); 0 when none."""
    elapsed = history.get("elapsed_seconds") or []
    return float(np.max(np.diff([0.0, *elapsed]))) if elapsed else 0.0


def budget_spent(history: dict, seconds: float) -> bool:
    """Whether a saved run has used a time budget of ``seconds``: then a resume trains no more."""
    elapsed = history.get("elapsed_seconds") or []
    return seconds > 0 and bool(elapsed) and _next_epoch_passes(float(elapsed[-1]), longest_epoch(history), seconds)


class TimeBudget(keras.callbacks.Callback):
    """Stop cleanly at an epoch boundary when the next epoch would end past ``seconds`` (``TrainConfig.time_budget_s``).

    The clock starts at ``started`` (a ``time.perf_counter()`` value; ``train``
    passes its own start less the training time before a resume, so loading
    data, the first held-out score and earlier sessions count); the longest
    epoch so far (``longest``: of the run before a resume) predicts the next
    one. Put it after :class:`Checkpoint`: the epoch just finished is saved
    before ``fit`` stops, and ``train`` returns its history as usual.
    ``stopped_after`` is the last epoch run (1-based), or None when the budget
    was never reached.
    """

    def __init__(self, seconds: float, started: float | None = None, longest: float = 0.0):
        super().__init__()
        self.seconds, self.started = float(seconds), started
        self.longest, self.epoch_started, self.stopped_after = float(longest), None, None

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.epoch_started)
        if _next_epoch_passes(now - self.started, self.longest, self.seconds):
            self.model.stop_training = True
            self.stopped_after = epoch + 1
