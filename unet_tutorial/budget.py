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

import numpy as np

__all__ = ["seconds_per_step", "epoch_mean_seconds", "epochs_for_budget", "planned_here", "OVERHEAD"]

OVERHEAD = 1.03  # a margin for the first epoch (it compiles) and for a busier machine


def seconds_per_step(config, *, data_dir=None, epochs: int = 7) -> float:
    """Measured seconds of training per step of ``config``, everything an epoch does included.

    Trains the run itself for ``epochs`` epochs of its own length in a
    temporary folder (``train.train``: the same data, network, callbacks,
    per-epoch held-out score and checkpoint); the mean length of the epochs
    after the first (which compiles), divided by its steps. The mean, not the
    median: a run's length is its number of epochs times their mean, and on a
    shared 2-core machine some epochs take half again as long (the median of a
    short probe then plans too many epochs, and the cosine schedule is cut off
    by the budget). A bare ``model.fit`` on the same tiles comes out about a
    third faster than a training run, and a plan from it overruns its budget.
    """
    import tempfile

    from .train import train

    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first one compiles), got {epochs}.")
    with tempfile.TemporaryDirectory() as folder:
        probe = dataclasses.replace(config, epochs=epochs, time_budget_s=0.0, output_dir=folder)
        elapsed = train(probe, data_dir=data_dir, verbose=0)["elapsed_seconds"]
    return epoch_mean_seconds(elapsed) / config.steps_per_epoch


def epoch_mean_seconds(elapsed_seconds) -> float:
    """The mean length of the epochs after the first, from the training time at each epoch's end."""
    if len(elapsed_seconds) < 2:
        raise ValueError(f"need the end times of at least 2 epochs (the first one compiles), got {len(elapsed_seconds)}.")
    return float(np.mean(np.diff(elapsed_seconds)))


def epochs_for_budget(config, minutes: float, step_seconds: float) -> int:
    """The epochs of ``config.steps_per_epoch`` steps that fill ``minutes`` at ``step_seconds`` a step."""
    if minutes <= 0 or step_seconds <= 0:
        raise ValueError(f"minutes and step_seconds must be > 0, got {minutes} and {step_seconds}.")
    return max(1, round(minutes * 60 / (OVERHEAD * step_seconds * config.steps_per_epoch)))


def planned_here(config, minutes: float, step_seconds: float | None = None):
    """(``config`` planned to fill ``minutes`` on this machine, its seconds a step), kept in the run's folder.

    A new run measures a step here first (:func:`seconds_per_step`; or takes
    ``step_seconds`` measured earlier), plans its epochs (:func:`epochs_for_budget`) and
    keeps the plan in ``plan.json`` in ``config.output_dir``. A resumed run
    reads the plan back (a run without one, its ``state.json``), so it keeps the
    epochs that its cosine schedule runs over: a probe on a busier machine
    must not re-plan a run half-way. The one planning rule of the scripts that
    record CPU runs and studies.
    """
    import json
    import pathlib

    from .files import write_json_atomic

    folder = pathlib.Path(config.output_dir)
    if (folder / "plan.json").is_file():
        saved = json.loads((folder / "plan.json").read_text())
        epochs, step_seconds = saved["epochs"], saved["seconds_per_step"]
    elif (folder / "state.json").is_file():  # started before plans were kept
        epochs = json.loads((folder / "state.json").read_text())["config"]["epochs"]
    else:
        if step_seconds is None:
            step_seconds = round(seconds_per_step(config), 4)
        epochs = epochs_for_budget(config, minutes, step_seconds)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "plan.json", {"seconds_per_step": step_seconds, "epochs": epochs})
    return dataclasses.replace(config, epochs=epochs, time_budget_s=minutes * 60), step_seconds
