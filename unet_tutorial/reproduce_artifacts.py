"""The artifacts of ``reproduce`` and their provenance: what chapter 7 reads, and where it came from.

Eight small files in ``--out`` (the device tool brings back at most 8), each
with the same ``provenance`` (command, commit, backend, hardware, date, and
whether the run was a CPU stand-in):

* ``provenance.json``: that provenance, plus the versions and every step's
  commands, budget, wall time and status;
* ``history.json``: the training histories, with the wall time of each epoch;
* ``metrics.json``: Table 1 (ISBI, held-out fold, TTA) and Table 2 (cell
  tracking, trained on one sequence, scored on the other) beside the paper's
  rows, and the time to quality;
* ``bench.json``: the throughput of each variant, beside NVIDIA's figures;
* ``predictions.npz``, ``predictions-PhC-C2DH-U373.npz``,
  ``predictions-DIC-C2DH-HeLa.npz``: a few predicted probability maps in the
  one prediction format (``predictions.save_predictions``, uint8), the
  provenance in their metadata; never the images themselves (the data's terms
  forbid re-hosting them);
* ``run.log``: the end of every step's output.

They are rewritten (atomically, each on its own) after every step, so a run cut
short still returns what it finished.
"""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import sys

import numpy as np

from . import __version__
from .files import write_json_atomic, write_text_atomic
from .manifest import ctc_dataset_names
from .predictions import load_predictions, save_predictions
from .provenance import cpu_model, gpus, package_version, source
from .reproduce_plan import SCALES, Step, shown
from .reproduce_steps import tail

__all__ = ["ARTIFACTS", "ISBI_GOAL_PIXEL_ERROR", "make_provenance", "predictions_file", "time_to_quality",
           "write_artifacts"]

ISBI_GOAL_PIXEL_ERROR = 0.07  # issue 9, item 4: time until the held-out pixel error first reaches this


def predictions_file(dataset: str) -> str:
    """The artifact that holds the predictions of ``dataset``."""
    return "predictions.npz" if dataset == "isbi2012" else f"predictions-{dataset}.npz"


ARTIFACTS = ("provenance.json", "history.json", "metrics.json", "bench.json", predictions_file("isbi2012"),
             *(predictions_file(name) for name in ctc_dataset_names()), "run.log")

# The anchor of issue 9, item 5 (cited, not measured here): NVIDIA DeepLearningExamples,
# TensorFlow2/Segmentation/UNet_Medical, README "Performance" (A100 80GB, batch 8).
NVIDIA_ANCHOR = {
    "source": "NVIDIA DeepLearningExamples, TensorFlow2/Segmentation/UNet_Medical (README, Performance)",
    "url": "https://github.com/NVIDIA/DeepLearningExamples/tree/master/TensorFlow2/Segmentation/UNet_Medical",
    "hardware": "NVIDIA A100 80GB",
    "batch_size": 8,
    "train_images_per_s": {"AMP": 119.0, "TF32": 46.0},
    "inference_images_per_s": {"AMP": 283.0},
}
PROVENANCE_CORE = ("run_kind", "stand_in", "command", "commit", "backend", "hardware", "date")


# ----------------------------------------------------------------------------- provenance


def make_provenance(args, started_at: datetime.datetime) -> dict:
    """What made this run: command, commit, hardware, versions, date, and whether it is a CPU stand-in."""
    found_gpus = gpus()
    cores = os.cpu_count()
    stand_in = args.scale != "gpu" or not found_gpus
    if found_gpus:
        first = found_gpus[0]
        hardware = (f"{len(found_gpus)}x {first['name']} ({first['memory']}, driver {first['driver']}); "
                    f"{cores} CPU cores ({cpu_model()})")
    else:
        hardware = f"CPU only: {cores} cores ({cpu_model()}), no GPU"
    run_kind = f"CPU stand-in ({cores} cores), not the GPU run" if stand_in else f"GPU run on {found_gpus[0]['name']}"
    versions = {"python": platform.python_version(), "unet_tutorial": __version__}
    for distribution in ("keras", "jax", "jaxlib", "numpy", "scipy", "scikit-image", "tifffile", "optree"):
        versions[distribution] = package_version(distribution)
    for distribution in sorted(d.metadata["Name"] for d in importlib.metadata.distributions()
                               if (d.metadata["Name"] or "").lower().startswith("jax-cuda")):
        versions[distribution] = package_version(distribution)
    code = source()
    return {
        "run_kind": run_kind,
        "stand_in": stand_in,
        # scripts/device_run.sh records its own command line; else this process's
        "command": os.environ.get("UNET_DEVICE_COMMAND") or shlex.join(["python", "-m", "unet_tutorial",
                                                                         *sys.argv[1:]]),
        "commit": code["commit"],
        "uncommitted_changes": code["uncommitted_changes"],
        "backend": "jax",
        "hardware": hardware,
        "date": started_at.isoformat(timespec="seconds"),
        "scale": args.scale,
        "preset": SCALES[args.scale].preset,
        "budget_s": args.budget_s,
        "versions": versions,
        "platform": platform.platform(),
    }


# ----------------------------------------------------------------------------- the results of the steps


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text or None


def _read_table(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return [{key: (value if key in ("name", "measured_on") else _float(value)) for key, value in row.items()}
                for row in csv.DictReader(file)]


def _history_entry(step: Step) -> dict:
    state = step.info.get("state") or {}
    return {"history": dict(state.get("history") or {}), "epoch_wall_s": step.info.get("epoch_wall_s", []),
            "initial_metrics": state.get("initial_metrics", {}), "held_out": state.get("held_out", []),
            "config": state.get("config", {}), "status": step.status, "wall_s": step.wall_s,
            "command": shown(step.commands[0])}


def time_to_quality(entry: dict, goal: float = ISBI_GOAL_PIXEL_ERROR) -> dict:
    """First epoch whose held-out pixel error is <= goal; its wall time since the command started."""
    errors = entry["history"].get("val_pixel_error", [])
    walls, elapsed = entry.get("epoch_wall_s", []), entry["history"].get("elapsed_seconds", [])
    result = {"goal_pixel_error": goal, "reached": False, "epochs_run": len(errors),
              "best_pixel_error": min(errors) if errors else None,
              "paper": "about 10 hours on an NVIDIA Titan (6 GB) for the whole training (Ronneberger et al. 2015, Sec. 5, the conclusion)",
              "goal": "under 10 minutes on one H100 (issue 9)"}
    for index, error in enumerate(errors):
        if error <= goal:
            steps_per_epoch = entry["config"].get("steps_per_epoch")
            result.update(reached=True, epoch=index + 1, pixel_error=error,
                          wall_s=walls[index] if index < len(walls) else None,
                          fit_elapsed_s=elapsed[index] if index < len(elapsed) else None,
                          steps=(index + 1) * steps_per_epoch if steps_per_epoch else None)
            break
    if errors:
        result["wall_s_run"] = walls[-1] if walls else None
    return result


# ----------------------------------------------------------------------------- the prediction artifacts


def save_isbi_predictions(out, provenance: dict, membrane, slices, model: str = "") -> pathlib.Path:
    """``predictions.npz``: P(membrane) (N, H, W) of held-out ISBI slices (``slices``: their indices), TTA."""
    return save_predictions(pathlib.Path(out) / predictions_file("isbi2012"), membrane, slices, compact=True,
                            provenance=provenance, dataset="isbi2012", channel="P(membrane)", tta=True, model=model)


def save_ctc_predictions(out, provenance: dict, dataset: str, frames: list[dict]) -> pathlib.Path:
    """``predictions-<dataset>.npz``: P(cell) of one frame per direction that finished.

    ``frames``: one dict per direction, ``cell`` (H, W) P(cell), ``index`` (its
    index in the annotated frames of sequence ``test``), ``train``, ``test``,
    ``tta``. The metadata's ``trained_on`` / ``tested_on`` say which image is which.
    """
    cells = np.stack([frame["cell"] for frame in frames]) if frames else np.zeros((0, 0, 0), np.float32)
    return save_predictions(pathlib.Path(out) / predictions_file(dataset), cells,
                            [frame["index"] for frame in frames], compact=True, provenance=provenance,
                            dataset=dataset, channel="P(cell)", trained_on=[frame["train"] for frame in frames],
                            tested_on=[frame["test"] for frame in frames], tta=[frame["tta"] for frame in frames])


def _isbi_results(isbi_eval: Step) -> tuple[dict, tuple]:
    """(Table 1 entry, (membrane, slices, model)) of a finished isbi-eval step: the first and last held-out slice."""
    table = isbi_eval.info["table"]
    note_path = pathlib.Path(table.replace(".csv", ".md"))
    note = note_path.read_text(encoding="utf-8").strip().splitlines()[-1] if note_path.is_file() else ""
    model = pathlib.Path(isbi_eval.info.get("model", "")).name
    saved = load_predictions(isbi_eval.info["probabilities"])
    keep = [0, len(saved.probabilities) - 1]
    slices = saved.slices if saved.slices is not None else np.arange(len(saved.probabilities))
    return ({"rows": _read_table(table), "note": note, "model": model},
            (saved.probabilities[keep, ..., 0], slices[keep], model))


def _ctc_results(step: Step) -> tuple[dict, dict]:
    """(Table 2 row, predicted frame) of a finished ctc-eval step."""
    name, train_sequence, test_sequence = step.info["dataset"], step.info["train"], step.info["test"]
    rows = _read_table(step.info["table"])
    saved = load_predictions(step.info["probabilities"])
    ours = rows[-1]
    ours["name"] = f"this book, trained on {train_sequence}"
    how = "with TTA" if step.info["tta"] else "without TTA"
    ours["measured_on"] = (f"{name} sequence {test_sequence}, {len(saved.probabilities)} annotated frames, {how}; "
                           f"trained on sequence {train_sequence}")
    frame = {"cell": saved.probabilities[0, ..., 1], "index": int(saved.slices[0]) if saved.slices is not None else 0,
             "train": train_sequence, "test": test_sequence, "tta": step.info["tta"]}
    return {"train": train_sequence, "test": test_sequence, "paper": rows[0], **ours}, frame


def write_artifacts(out: pathlib.Path, provenance: dict, steps: list[Step], wall_s: float) -> None:
    """Rewrite every artifact from the steps done so far (atomically, each file on its own)."""
    out = pathlib.Path(out)
    provenance = {**provenance, "wall_time_s": round(wall_s, 1),
                  "steps": [{"name": s.name, "status": s.status, "planned_s": s.planned_s, "budget_s": s.budget_s,
                             "wall_s": s.wall_s, "commands": [shown(c) for c in s.commands]} for s in steps]}
    core = {key: provenance[key] for key in PROVENANCE_CORE}
    by_name = {s.name: s for s in steps}

    history = {"provenance": core, "isbi": None, "ctc": {}}
    metrics = {"provenance": core, "table1": None, "table2": {name: [] for name in ctc_dataset_names()},
               "time_to_quality": None}
    isbi_predictions = (np.zeros((0, 0, 0), np.float32), [], "")  # (membrane, slices, model): none yet
    ctc_frames = {name: [] for name in ctc_dataset_names()}
    if "isbi-train" in by_name and by_name["isbi-train"].info.get("state"):
        history["isbi"] = _history_entry(by_name["isbi-train"])
        metrics["time_to_quality"] = time_to_quality(history["isbi"])
    isbi_eval = by_name.get("isbi-eval")
    if isbi_eval and isbi_eval.status == "ok":
        metrics["table1"], isbi_predictions = _isbi_results(isbi_eval)
    for step in steps:
        if step.kind == "ctc-train" and step.info.get("state"):
            history["ctc"][f"{step.info['dataset']} {step.info['train']}"] = _history_entry(step)
        if step.kind == "ctc-eval" and step.status == "ok":
            row, frame = _ctc_results(step)
            metrics["table2"][step.info["dataset"]].append(row)
            ctc_frames[step.info["dataset"]].append(frame)
    bench_rows = []
    if "bench" in by_name and pathlib.Path(by_name["bench"].info["out"]).is_file():
        lines = pathlib.Path(by_name["bench"].info["out"]).read_text().splitlines()
        bench_rows = [json.loads(line) for line in lines if line.strip()]
    bench = {"provenance": core, "results": bench_rows, "anchor": NVIDIA_ANCHOR,
             "flops_note": "convolution FLOPs only (multiply-add = 2); training counted as 3x forward (bench.py)"}

    for name, content in (("provenance.json", provenance), ("history.json", history), ("metrics.json", metrics),
                          ("bench.json", bench)):
        write_json_atomic(out / name, content)
    save_isbi_predictions(out, core, *isbi_predictions)
    for name, frames in ctc_frames.items():
        save_ctc_predictions(out, core, name, frames)
    log = "\n".join(f"===== {s.name}: {s.status}, {s.wall_s} s of {s.budget_s} s\n{tail(s.log, 120)}"
                    for s in steps if s.wall_s is not None)
    write_text_atomic(out / "run.log", log + "\n")
