"""How long a run should be to fill a wall-clock budget on this machine.

A preset's epochs suit the machine it was tuned on; the same 2 cores elsewhere
may be five times faster or slower. The recorded CPU runs and the recipe study
therefore measure a training step here first and plan their epochs from it, so
that a 30-minute run trains for about 30 minutes, and its cosine schedule ends
when the budget does (``TrainConfig.time_budget_s`` stops a run that would
overrun; it is the safety net, not the plan).
"""

from __future__ import annotations

import dataclasses
import time

__all__ = ["seconds_per_step", "epochs_for_budget", "OVERHEAD"]

OVERHEAD = 1.1  # a tenth more per step for loading, compiling, checkpoints and the per-epoch score


def seconds_per_step(config, *, data_dir=None) -> float:
    """Measured seconds of one step of ``model.fit`` on ``config``'s tiles (after a compiling epoch).

    The difference of a 2-step and a 12-step epoch, so the cost of starting an
    epoch cancels out. A probe on a busy machine comes out long.
    """
    import keras

    from .pipeline import SegmentationDataset
    from .splits import run_split
    from .train import _build_and_compile, _load_data

    images, labels, instances, ignore = _load_data(config, data_dir)
    trained = run_split(len(images), config.validation_folds, config.validation_fold, config.tuning_block)[0]
    n_classes = max(2, 1 + max(int(labels[i].max()) for i in trained))

    def tiles(steps):
        return SegmentationDataset(
            [images[i] for i in trained], [labels[i] for i in trained],
            instances=None if instances is None else instances[trained],
            ignore=None if ignore is None else ignore[trained], tiles=config.tiles,
            augmentation=config.augmentation, weighting=config.weighting, batch_size=config.batch_size,
            tiles_per_epoch=steps * config.batch_size, n_classes=n_classes, seed=0)

    keras.utils.set_random_seed(0)
    model = _build_and_compile(config, channels=1, n_classes=n_classes)
    model.fit(tiles(2), epochs=1, verbose=0)  # compiles

    def seconds(steps):
        started = time.perf_counter()
        model.fit(tiles(steps), epochs=1, verbose=0)
        return time.perf_counter() - started

    short, long = seconds(2), seconds(12)
    return (long - short) / 10


def epochs_for_budget(config, minutes: float, step_seconds: float) -> int:
    """The epochs of ``config.steps_per_epoch`` steps that fill ``minutes`` at ``step_seconds`` a step."""
    if minutes <= 0 or step_seconds <= 0:
        raise ValueError(f"minutes and step_seconds must be > 0, got {minutes} and {step_seconds}.")
    return max(1, round(minutes * 60 / (OVERHEAD * step_seconds * config.steps_per_epoch)))


def planned(config, minutes: float, step_seconds: float):
    """``config`` with the epochs that fill ``minutes`` and a time budget of ``minutes`` as the safety net."""
    return dataclasses.replace(config, epochs=epochs_for_budget(config, minutes, step_seconds),
                               time_budget_s=minutes * 60)
