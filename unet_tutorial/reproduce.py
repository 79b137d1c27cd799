"""``python -m unet_tutorial reproduce``: chapter 7's whole run, step by step, within a wall-time budget.

On the lent GPU machine (``--scale gpu``, started by ``scripts/device_run.sh``,
JAX, no TensorFlow, no network, the data packed by
``scripts/prepare_device_run.sh`` into ``.carry/data``) or on a CPU as a
stand-in (``--scale cpu``: the ``cpu-tiny`` preset, a small bench; its
provenance says so). The steps, each a child process running the package's own
command line on the packed data, each under its own budget (printed first;
``--dry-run`` prints only that plan):

1. ``isbi-train``: ISBI-2012 with the paper's network and terms (``paper``
   preset: 572x572 tiles, valid padding, weight map, elastic deformation, SGD
   with momentum 0.99), slices 0-5 (fold 0 of 5) held out. Stopped when its
   budget is spent; the last completed epoch's checkpoint is the model. The
   driver notes the wall time at which each epoch's held-out pixel error appears:
   the time to quality (first epoch at or under 0.07) counts from the start of
   the command, data loading and compilation included.
2. ``isbi-eval``: overlap-tile prediction with test-time augmentation (the 8
   flips/rotations) of the held-out fold, pixel, Rand and warping error with the
   challenge's threshold sweep, beside the paper's Table 1.
3. ``ctc-*``: PhC-C2DH-U373 and DIC-C2DH-HeLa, trained on one sequence and
   scored (SEG, pixel IoU) on the other, both ways, beside the paper's Table 2.
4. ``bench``: training and inference images/s and TFLOP/s of the network at
   its tile size, batch 8, float32 and bfloat16, with and without jit_compile.

The work is split along its jobs: ``reproduce_plan`` (options, scales, the
plan), ``reproduce_steps`` and ``reproduce_worker`` (the budgeted child
processes), ``reproduce_artifacts`` (provenance and the artifacts); this module
runs the plan and prints the summary. None of them imports Keras: only the
children do.
"""

from __future__ import annotations

import datetime
import pathlib
import shutil
import time

from .reproduce_artifacts import ARTIFACTS, make_provenance, write_artifacts
from .reproduce_plan import MINIMUM_SHARE, add_reproduce_arguments, build_parser, check_args, print_plan
from .reproduce_steps import read_json, run_step, tail

__all__ = ["add_reproduce_arguments", "run_reproduce"]


def run_reproduce(args) -> int:
    """Run the checked plan of ``args`` (``python -m unet_tutorial reproduce ...``); 0 when it ran to the end."""
    if not hasattr(args, "steps"):  # from the command line: check the options before any step starts
        check_args(args, build_parser())
    steps = args.steps
    print_plan(args, steps, commands=args.dry_run)
    if args.dry_run:
        return 0
    out = pathlib.Path(args.out)
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    log_dir = args.runs_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    (args.runs_dir / "bench.jsonl").unlink(missing_ok=True)
    shutil.rmtree(args.runs_dir / "jax-cache", ignore_errors=True)  # every run starts cold, as on a fresh machine
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.perf_counter()
    deadline = started + args.budget_s
    provenance = make_provenance(args, started_at)
    print(f"{provenance['run_kind']}: {provenance['hardware']}; commit {provenance['commit'][:12]}")
    by_name = {}
    for index, step in enumerate(steps):
        # keep enough time for the smallest useful share of every later step
        reserve = sum(later.planned_s * MINIMUM_SHARE for later in steps[index + 1:])
        budget = min(step.planned_s, deadline - time.perf_counter() - reserve)
        needed = by_name.get(step.needs) if step.needs else None
        if step.needs and (needed is None or "model" not in needed.info):
            step.status = f"skipped: {step.needs} left no model"
        elif budget < step.planned_s * MINIMUM_SHARE:
            step.status = f"skipped: {budget:.0f} s left of its {step.planned_s:.0f} s"
        else:
            if needed is not None:
                step.info["model"] = needed.info["model"]
            print(f"-- {step.name}: budget {budget:.0f} s", flush=True)
            run_step(step, args, budget, log_dir)
            print(tail(step.log, 8))
        by_name[step.name] = step
        print(f"-- {step.name}: {step.status}" + (f" after {step.wall_s} s" if step.wall_s is not None else ""), flush=True)
        write_artifacts(out, provenance, steps, time.perf_counter() - started)
    total = time.perf_counter() - started
    write_artifacts(out, provenance, steps, total)
    print_summary(out, provenance, steps, total, args.budget_s)
    return 0


def print_summary(out: pathlib.Path, provenance: dict, steps, total: float, budget_s: float) -> None:
    """Each step's wall time and status, then the headline numbers from the artifacts just written."""
    print(f"\nsummary ({provenance['run_kind']}, {total:.0f} s of {budget_s:.0f} s):")
    for step in steps:
        wall = f"{step.wall_s:6.1f} s" if step.wall_s is not None else "      -"
        print(f"  {step.name:<28} {wall}  {step.status}")
    metrics = read_json(out / "metrics.json") or {}
    if metrics.get("table1"):
        ours = metrics["table1"]["rows"][-1]
        print(f"  ISBI held-out (TTA): pixel {ours['pixel_error']:.4f}, Rand {ours['rand_error']:.4f}, "
              f"warping {ours['warping_error']:.6f} (paper test: 0.0611, 0.0382, 0.000353)")
    if metrics.get("time_to_quality"):
        ttq = metrics["time_to_quality"]
        print(f"  time to pixel error <= {ttq['goal_pixel_error']}: " +
              (f"{ttq['wall_s']} s (epoch {ttq['epoch']})" if ttq["reached"] else f"not reached (best {ttq['best_pixel_error']})"))
    for name, rows in metrics.get("table2", {}).items():
        for row in rows:
            print(f"  {name} {row['train']}->{row['test']}: SEG {row['seg']:.4f}, pixel IoU {row['iou_cell']:.4f}")
    for row in (read_json(out / "bench.json") or {}).get("results", []):
        if "error" in row:
            print(f"  bench {row['dtype_policy']} jit {row['jit_compile']}: {row['error']}")
        else:
            print(f"  bench {row['dtype_policy']:<15} jit {row['jit_compile']:<5}: train {row['train_images_per_s']:8.2f} img/s "
                  f"({row['train_tflops_per_s']:.3f} TFLOP/s), inference {row['inference_images_per_s']:8.2f} img/s")
    print(f"artifacts in {out}: {', '.join(ARTIFACTS)}")
