"""Where a recorded result came from: the source commit, the machine and the versions.

Every artifact the book shows records these (``reproduce`` for the device run,
``scripts/recipe_study.py`` and ``scripts/record_cpu_runs.py`` for the CPU runs),
so each figure can be traced to the code and the hardware that made it.
"""

from __future__ import annotations

import copy
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import shutil
import subprocess
import sys

__all__ = ["PACKAGE_PARENT", "package_version", "gpus", "cpu_model", "cpu_hardware", "checked_out", "source",
           "cpu_script_run"]

PACKAGE_PARENT = pathlib.Path(__file__).resolve().parents[1]  # the folder that holds unet_tutorial/


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpus() -> list[dict]:
    """NVIDIA GPUs that ``nvidia-smi`` lists: name, memory, driver (none without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True)
    found = []
    for line in result.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            found.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return found


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_hardware() -> str:
    """"CPU, 2 cores (<model>), no GPU": how the CPU runs name their hardware."""
    return f"CPU, {os.cpu_count()} cores ({cpu_model()}), no GPU"


def checked_out() -> dict:
    """Commit and uncommitted files now: from git here, from .carry/source.json on the device (no .git there)."""
    try:
        def git(*words):
            return subprocess.run(["git", *words], cwd=PACKAGE_PARENT, capture_output=True, text=True,
                                  check=True).stdout

        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": commit, "uncommitted_changes": [line[3:] for line in status.splitlines()], "from": "git"}
    except (OSError, subprocess.CalledProcessError):
        try:
            saved = json.loads((PACKAGE_PARENT / ".carry" / "source.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        return {"commit": saved.get("commit", "unknown"), "uncommitted_changes": saved.get("uncommitted_changes", []),
                "from": ".carry/source.json (written by prepare_device_run.sh)"}


# Read once, when this module is first imported: a process runs the code it loaded when it started, while the
# checkout may move on during a 90-minute run. Every script imports this module before it trains.
_STARTED_FROM = checked_out()


def source() -> dict:
    """The commit (and uncommitted files) this process started from: what every recorded result names."""
    return copy.deepcopy(_STARTED_FROM)


def cpu_script_run(state: dict | None = None, steps_per_epoch: int | None = None, **fields) -> dict:
    """Provenance of a result a CPU script records (``scripts/record_cpu_runs.py``, ``recipe_study.py``, ``seed_study.py``).

    The command, commit, backend, hardware and date; with a training run's
    ``state`` (``state.json``) also its training minutes, epochs, steps and
    config; the commit is :func:`source`'s. ``fields`` add what only one
    script knows (in that order, before the date).
    """
    code = source()
    run = {
        "command": shlex.join(["python", *sys.argv]),
        "commit": code["commit"],
        "uncommitted_changes": code["uncommitted_changes"],
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "hardware": cpu_hardware(),
    }
    if state is not None:
        run.update(training_minutes=round(state["elapsed_seconds"] / 60, 2), epochs=state["epoch"],
                   steps=state["epoch"] * steps_per_epoch)
    run.update(fields)
    run["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if state is not None:
        run["config"] = state["config"]
    return run
