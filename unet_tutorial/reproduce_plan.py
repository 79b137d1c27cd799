"""What ``python -m unet_tutorial reproduce`` runs: its options, its two scales and its plan of steps.

Chapter 7's results come from one command, run on the lent GPU machine
(``--scale gpu``, through ``scripts/device_run.sh``) or on a CPU as a stand-in
(``--scale cpu``). This module reads and checks its options and turns them into
a list of :class:`Step`: each step is one child process running the package's
own command line (``train``, ``predict``, ``evaluate``) or the bench, under a
wall-time budget. ``reproduce_steps`` runs them, ``reproduce_artifacts`` writes
the results, ``reproduce`` ties the three together.

Every option is checked here, before any step starts, so a typo fails in a
second rather than after minutes of training. The ``--isbi-set`` /
``--ctc-set FIELD=VALUE`` overrides are read by ``config_cli.config_from_overrides``,
the same reading as ``train``'s ``--field value`` options.

This module imports neither Keras nor JAX: ``reproduce --help`` and
``--dry-run`` start at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shlex
import shutil
import tempfile

from .config import TrainConfig
from .config_cli import config_from_overrides
from .manifest import ctc_dataset_names

__all__ = ["SCALES", "Scale", "Step", "add_reproduce_arguments", "build_parser", "check_args", "parse_args",
           "plan", "print_plan"]

PARTS = ("isbi", "ctc", "bench")  # what --only may choose
# Fields the run itself sets; --isbi-set / --ctc-set may change any other TrainConfig field.
RESERVED_FIELDS = ("dataset", "sequence", "output_dir")
BENCH_VARIANTS = (("float32", "true"), ("mixed_bfloat16", "true"), ("float32", "false"), ("mixed_bfloat16", "false"))
MINIMUM_SHARE = 0.4  # a step runs only if it can get at least this share of its planned budget


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big the run is: the presets, their overrides and the per-step budgets in seconds."""

    name: str
    preset: str  # config.PRESETS name for ISBI and the CTC runs
    isbi_overrides: dict  # TrainConfig fields on top of the preset (ISBI)
    ctc_overrides: dict  # the same for the four cell tracking runs
    bench: dict  # bench.bench() arguments shared by the variants
    budgets: dict  # step kind -> planned seconds
    budget_s: float  # default total budget (the sum of the steps, plus a margin)
    ctc_tta: bool  # test-time augmentation for the cell tracking scores (ISBI is always scored with it)


SCALES = {
    # One H200 (or H100), one device call: about 8 minutes of work inside a 10-minute call
    # (the warping error of isbi-eval runs on one CPU core: tens of seconds).
    # epochs is a ceiling: the budget stops training. 100 steps per epoch gives the
    # time to quality a resolution of a few seconds; 12 threads prepare tiles
    # (elastic deformation runs on the CPU, DESIGN 5).
    "gpu": Scale(
        name="gpu", preset="paper",
        isbi_overrides=dict(validation_folds=5, validation_fold=0, epochs=1000, steps_per_epoch=100, workers=12),
        ctc_overrides=dict(validation_folds=1, epochs=1000, steps_per_epoch=50, workers=12),
        bench=dict(preset="paper", input_size=572, batch_size=8, steps=10, warmup=2),
        budgets={"isbi-train": 130, "isbi-eval": 70, "ctc-train": 35, "ctc-eval": 20, "bench": 70},
        budget_s=495, ctc_tta=True,
    ),
    # The CPU stand-in on 2 cores in under 10 minutes: the cpu-tiny preset (chapter 5). XLA's CPU
    # compilation takes most of the bench's time (about 30 s per jit variant here); the cell
    # tracking frames are scored without TTA (8 forward passes of a whole frame each on 2 cores).
    "cpu": Scale(
        name="cpu", preset="cpu-tiny",
        isbi_overrides=dict(validation_folds=5, validation_fold=0, epochs=60),
        ctc_overrides=dict(validation_folds=1, epochs=60),
        bench=dict(preset="cpu-tiny", input_size=132, batch_size=8, steps=2, warmup=1),
        budgets={"isbi-train": 150, "isbi-eval": 70, "ctc-train": 35, "ctc-eval": 25, "bench": 100},
        budget_s=570, ctc_tta=False,
    ),
}


@dataclasses.dataclass
class Step:
    """One child process of the run."""

    name: str  # e.g. "isbi-train", "ctc-train PhC-C2DH-U373 01"
    kind: str  # key of Scale.budgets
    commands: list  # package CLI argv lists (or one bench spec) run in one child process
    planned_s: float
    needs: str | None = None  # name of the step whose result this one needs
    info: dict = dataclasses.field(default_factory=dict)
    # filled in when it runs
    status: str = "planned"
    budget_s: float | None = None
    wall_s: float | None = None
    log: str = ""


# ----------------------------------------------------------------------------- options


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``reproduce``."""
    parser.allow_abbrev = False  # --isbi would otherwise silently mean --isbi-set
    parser.add_argument("--scale", choices=sorted(SCALES), default="gpu",
                        help="gpu: the paper preset on the lent GPU (default); cpu: the cpu-tiny stand-in")
    parser.add_argument("--out", help="folder for the artifacts ($OUT on the device machine)")
    parser.add_argument("--data", default=".carry/data",
                        help="the packed .npz data, made by datasets.pack_data (default .carry/data)")
    parser.add_argument("--runs", default=None, help="checkpoints and temporary files (default: a folder in /tmp)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-time budget of all steps together (default: the scale's, 495 s on gpu)")
    parser.add_argument("--step-budget", action="append", metavar="KIND=SECONDS",
                        help="change the planned budget of one kind of step (isbi-train, isbi-eval, ctc-train, "
                             "ctc-eval, bench), e.g. isbi-train=480 with --only isbi for a longer time-to-quality run")
    parser.add_argument("--only", default=None, help="comma-separated parts to run: isbi, ctc, bench (default all)")
    parser.add_argument("--isbi-set", action="append", metavar="FIELD=VALUE",
                        help="change a TrainConfig field of the ISBI run (repeatable)")
    parser.add_argument("--ctc-set", action="append", metavar="FIELD=VALUE",
                        help="change a TrainConfig field of the cell tracking runs (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (steps, budgets, commands) and stop")


def build_parser() -> argparse.ArgumentParser:
    """A parser of ``reproduce``'s options alone (``check_args`` reports its errors through it)."""
    parser = argparse.ArgumentParser(
        prog="python -m unet_tutorial reproduce", allow_abbrev=False,
        description="Chapter 7's run: ISBI-2012 and cell tracking training, evaluation, time to quality and "
                    "throughput, each within a wall-time budget; small artifacts with provenance in --out.",
    )
    add_reproduce_arguments(parser)
    return parser


def _overrides(scale: Scale, items, flag: str, parser, dataset: str | None = None) -> dict:
    """The scale's overrides plus ``items`` (``FIELD=VALUE``), checked as one TrainConfig."""
    try:
        _, given = config_from_overrides(scale.preset, items or (), reserved=RESERVED_FIELDS)
    except ValueError as error:
        parser.error(f"{flag} {error}")
    overrides = {**(scale.isbi_overrides if flag == "--isbi-set" else scale.ctc_overrides), **given}
    if flag == "--isbi-set" and int(overrides.get("validation_folds", 1)) < 2:
        parser.error("--isbi-set validation_folds must be >= 2: ISBI is scored on held-out slices only.")
    try:  # the scale's fields and the given ones together
        TrainConfig.preset(scale.preset, **overrides, **({"dataset": dataset} if dataset else {}))
    except (TypeError, ValueError) as error:
        parser.error(f"{flag}: {error}")
    return overrides


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Check everything and add ``parts``, the overrides, ``budgets`` and ``steps`` (errors exit with status 2)."""
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        parser.error(f"KERAS_BACKEND={backend}: the device run uses the JAX backend (the GPU machine has no TensorFlow).")
    os.environ["KERAS_BACKEND"] = "jax"
    scale = SCALES[args.scale]
    args.parts = PARTS if args.only is None else tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"--only takes a comma-separated list of {', '.join(PARTS)}; got {args.only!r}.")
    args.isbi_overrides = _overrides(scale, args.isbi_set, "--isbi-set", parser)
    args.ctc_overrides = _overrides(scale, args.ctc_set, "--ctc-set", parser, dataset=ctc_dataset_names()[0])
    args.budgets = dict(scale.budgets)
    for item in args.step_budget or []:
        kind, _, seconds = item.partition("=")
        if kind not in scale.budgets:
            parser.error(f"--step-budget: unknown step kind {kind!r}; choose from {', '.join(scale.budgets)}.")
        try:
            args.budgets[kind] = float(seconds)
        except ValueError:
            parser.error(f"--step-budget {kind}: {seconds!r} is not a number of seconds.")
        if args.budgets[kind] <= 0:
            parser.error(f"--step-budget {kind}: the budget must be > 0 seconds, got {seconds}.")
    steps = plan(args)
    if args.budget_s is None:
        args.budget_s = max(scale.budget_s, sum(step.planned_s for step in steps))
    needed = sum(step.planned_s * MINIMUM_SHARE for step in steps)
    if args.budget_s < needed:
        parser.error(f"--budget-s {args.budget_s:g} is too small for these steps: they need at least {needed:.0f} s "
                     f"({MINIMUM_SHARE:.0%} of each planned budget); give more, or fewer parts with --only.")
    args.steps = steps
    if args.dry_run:
        return args
    if not args.out:
        parser.error("--out is required (the folder for the artifacts; $OUT on the device machine).")
    if not (pathlib.Path(args.data) / "isbi2012.npz").is_file():
        parser.error(f"--data {args.data} holds no isbi2012.npz; run `bash scripts/prepare_device_run.sh` first "
                     "(it packs the data with datasets.pack_data).")
    if args.scale == "gpu" and shutil.which("nvidia-smi") is None:
        parser.error("--scale gpu needs an NVIDIA GPU (no nvidia-smi here); use --scale cpu for the CPU stand-in.")
    return args


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and check ``reproduce``'s options (``argv`` without the word ``reproduce``)."""
    parser = build_parser()
    return check_args(parser.parse_args(argv), parser)


# ----------------------------------------------------------------------------- the plan


def _train_argv(preset: str, overrides: dict, dataset: str, sequence: str | None, output: str, data: str) -> list[str]:
    argv = ["train", "--preset", preset, "--dataset", dataset, "--data-dir", data, "--output", output, "--quiet"]
    if sequence:
        argv += ["--sequence", sequence]
    for key, value in sorted(overrides.items()):
        argv += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def plan(args) -> list[Step]:
    """The steps of this run, in order, with their planned budgets and package commands."""
    scale = SCALES[args.scale]
    runs = pathlib.Path(args.runs or os.path.join(tempfile.gettempdir(), f"unet-device-{scale.name}"))
    args.runs_dir = runs
    data = str(pathlib.Path(args.data).resolve())  # the children read the packed folder through the loaders
    batch = "1"  # one whole-image tile per forward pass: a larger batch would be padded with empty tiles
    steps = []
    if "isbi" in args.parts:
        run = str(runs / "isbi2012")
        folds = str(args.isbi_overrides["validation_folds"])
        fold = str(args.isbi_overrides.get("validation_fold", 0))
        probabilities, table = str(runs / "isbi2012-heldout.npz"), str(runs / "isbi2012-table1.csv")
        steps.append(Step("isbi-train", "isbi-train",
                          [_train_argv(scale.preset, args.isbi_overrides, "isbi2012", None, run, data)],
                          args.budgets["isbi-train"], info={"run": run}))
        steps.append(Step("isbi-eval", "isbi-eval", [
            ["predict", "--model", "{model}", "--dataset", "isbi2012", "--data-dir", data, "--split", "train",
             "--fold", fold, "--folds", folds, "--tta", "--batch-size", batch, "--quiet", "--output", probabilities],
            ["evaluate", "--probabilities", probabilities, "--dataset", "isbi2012", "--data-dir", data, "--fold", fold,
             "--folds", folds, "--tta", "--quiet", "--csv", table, "--markdown", table.replace(".csv", ".md")],
        ], args.budgets["isbi-eval"], needs="isbi-train", info={"probabilities": probabilities, "table": table}))
    if "ctc" in args.parts:
        tta = ["--tta"] if scale.ctc_tta else []
        for name in ctc_dataset_names():
            for train_sequence, test_sequence in (("01", "02"), ("02", "01")):
                key = f"{name} {train_sequence}"
                run = str(runs / f"{name}-{train_sequence}")
                probabilities = str(runs / f"{name}-{train_sequence}-on-{test_sequence}.npz")
                table = probabilities.replace(".npz", ".csv")
                steps.append(Step(f"ctc-train {key}", "ctc-train",
                                  [_train_argv(scale.preset, args.ctc_overrides, name, train_sequence, run, data)],
                                  args.budgets["ctc-train"], info={"run": run, "dataset": name,
                                                                    "train": train_sequence, "test": test_sequence}))
                steps.append(Step(f"ctc-eval {key}", "ctc-eval", [
                    ["predict", "--model", "{model}", "--dataset", name, "--data-dir", data, "--sequence", test_sequence,
                     *tta, "--batch-size", batch, "--quiet", "--output", probabilities],
                    ["evaluate", "--probabilities", probabilities, "--dataset", name, "--data-dir", data,
                     "--sequence", test_sequence, *tta, "--quiet", "--csv", table],
                ], args.budgets["ctc-eval"], needs=f"ctc-train {key}",
                    info={"dataset": name, "train": train_sequence, "test": test_sequence, "tta": scale.ctc_tta,
                          "probabilities": probabilities, "table": table}))
    if "bench" in args.parts:
        spec = {**scale.bench, "variants": [list(v) for v in BENCH_VARIANTS], "out": str(runs / "bench.jsonl")}
        steps.append(Step("bench", "bench", [spec], args.budgets["bench"], info={"out": spec["out"]}))
    return steps


def shown(command) -> str:
    """One command of a step as a reader would type it."""
    if isinstance(command, list):
        return "python -m unet_tutorial " + shlex.join(command)
    return "bench variants: " + ", ".join(f"{dtype}/jit {jit}" for dtype, jit in command["variants"])


def print_plan(args, steps, commands: bool = False) -> None:
    """The steps and their budgets (and, with ``commands``, what each one runs)."""
    scale = SCALES[args.scale]
    print(f"plan: scale {scale.name} (preset {scale.preset}), total budget {args.budget_s:.0f} s, "
          f"checkpoints in {args.runs_dir}")
    print(f"  ISBI overrides: {args.isbi_overrides}\n  CTC overrides:  {args.ctc_overrides}")
    for step in steps:
        print(f"  {step.name:<28} {step.planned_s:5.0f} s")
    print(f"  {'sum of planned budgets':<28} {sum(s.planned_s for s in steps):5.0f} s")
    if commands:
        for step in steps:
            for command in step.commands:
                text = shown(command) if isinstance(command, list) else f"bench {command}"  # the bench spec in full
                print(f"  [{step.name}] {text}")
