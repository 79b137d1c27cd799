"""Running the steps of ``reproduce``: each one a child process, stopped when its wall-time budget is spent.

A step (``reproduce_plan.Step``) runs in a child process of its own
(``python -m unet_tutorial.reproduce_worker``), in a process group of its own,
so that at the end of its budget the whole group (the worker threads that
prepare tiles too) can be stopped: SIGTERM, then SIGKILL. While a training step
runs, the driver watches its ``history.json`` and notes the wall time, since the
child started, at which each epoch appeared: the time to quality counts from the
start of the command, data loading and compilation included.

A training step that is stopped by its budget is not a failure: the last
completed epoch's checkpoint is the model that the next step evaluates.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

from .provenance import PACKAGE_PARENT
from .reproduce_plan import Step

__all__ = ["read_json", "run_step", "tail"]



def read_json(path) -> dict | None:
    """The JSON content of ``path``, or None when it is missing or half-written."""
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tail(text: str, lines: int) -> str:
    """The last ``lines`` non-blank lines of ``text`` ("..." first when some were left out)."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join((["..."] if len(kept) > lines else []) + kept[-lines:])


def _kill(process: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _child_environment(args) -> dict:
    """The driver's environment, plus what every child needs (JAX, unbuffered output, the package, the cache)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1",
            # the package is imported from where the driver found it (on the device: a checkout, not installed)
            "PYTHONPATH": str(PACKAGE_PARENT) + (os.pathsep + path if path else ""),
            "UNET_DEVICE_JAX_CACHE": str(args.runs_dir / "jax-cache")}


def run_step(step: Step, args, budget: float, log_dir: pathlib.Path) -> None:
    """Run one step's child process for at most ``budget`` seconds; note each epoch's wall time.

    Fills in the step's ``status``, ``wall_s``, ``budget_s`` and ``log``, and for
    a training step ``info["epoch_wall_s"]``, ``info["state"]`` (its
    ``state.json``) and ``info["model"]`` (the model the next step uses).
    """
    commands = [[c.replace("{model}", step.info.get("model", "")) for c in command] if isinstance(command, list)
                else command for command in step.commands]
    step.commands = commands
    log_path = log_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", step.name) + ".log")
    history_path = pathlib.Path(step.info["run"]) / "history.json" if "run" in step.info else None
    if "run" in step.info:
        shutil.rmtree(step.info["run"], ignore_errors=True)  # a fresh run, never a resumed one
    epoch_wall, seen = [], 0
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "unet_tutorial.reproduce_worker", args.scale, json.dumps(commands)],
            env=_child_environment(args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        status = None
        while status is None:
            try:
                status = process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if history_path is not None:
                history = read_json(history_path) if history_path.is_file() else None
                epochs = len((history or {}).get("epoch", []))
                if epochs > seen:
                    epoch_wall += [round(time.perf_counter() - started, 1)] * (epochs - seen)
                    seen = epochs
            if status is None and time.perf_counter() - started > budget:
                _kill(process)
                status = "budget"
    step.wall_s = round(time.perf_counter() - started, 1)
    step.budget_s = round(budget, 1)
    step.log = log_path.read_text(encoding="utf-8", errors="replace")
    if status == "budget":
        step.status = "stopped at its budget" if step.kind.endswith("train") else "timed out"
    else:
        step.status = "ok" if status == 0 else f"failed (exit {status})"
    if history_path is not None:
        _note_training(step, epoch_wall)


def _note_training(step: Step, epoch_wall: list) -> None:
    """After a training step: its epochs' wall times, its saved state and the model the next step uses."""
    run = pathlib.Path(step.info["run"])
    step.info["epoch_wall_s"] = epoch_wall
    state = read_json(run / "state.json")
    if state is None:
        step.status += "; no epoch completed"
        return
    final = run / "model.keras"
    step.info["model"] = str(final if final.is_file() else run / state["checkpoint"])
    step.info["state"] = state
    if step.status.startswith(("ok", "stopped")):
        step.status = step.status.replace("ok", "ok (all epochs)")
