"""Chapter 7's full run (issue 9): train, evaluate, time and write small artifacts, within a wall-time budget.

Run by ``scripts/device_run.sh`` on the lent GPU machine (JAX, no TensorFlow,
no network), after ``scripts/prepare_device_run.sh`` packed the data and wheels
here into ``.carry/``. Call the device tool's run with carry ``[".carry"]``,
timeout_s 600 and the command ``bash scripts/device_run.sh``. The steps, each
a child process running the package's own command line
(``python -m unet_tutorial train|predict|evaluate``, ``bench.bench``) on the
carried data (``carried_data.use_carried_data``), each under its own wall-time
budget (printed first; ``--dry-run`` prints only that plan):

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

Artifacts in ``--out`` (the device tool brings back 8 files; these are 6), each
with the same ``provenance`` (command, commit, backend, versions, hardware,
date, and whether it is a CPU stand-in): ``provenance.json`` (also every step's
command, budget, wall time and status), ``history.json``, ``metrics.json``,
``bench.json``, ``predictions.npz`` (uint8 probabilities of a few held-out
images; never the images themselves: the data terms forbid re-hosting) and
``run.log``. They are rewritten after every step, so a run cut short still
returns what it finished.

``--scale cpu`` runs the same path at CPU size (``cpu-tiny`` preset, a small
bench) as a stand-in on a machine without a GPU; its provenance says so.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # the package is imported from this checkout (not installed on the device)
ISBI_GOAL_PIXEL_ERROR = 0.07  # issue 9, item 4: time until the held-out pixel error first reaches this
ARTIFACTS = ("provenance.json", "history.json", "metrics.json", "bench.json", "predictions.npz", "run.log")
CTC_NAMES = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
# Fields the run itself sets; --isbi-set / --ctc-set may change any other TrainConfig field.
RESERVED_FIELDS = ("dataset", "sequence", "output_dir")
BENCH_VARIANTS = (("float32", "true"), ("mixed_bfloat16", "true"), ("float32", "false"), ("mixed_bfloat16", "false"))

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


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big the run is: the presets, their overrides and the per-step budgets in seconds."""

    name: str
    preset: str  # train.PRESETS name for ISBI and the CTC runs
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
MINIMUM_SHARE = 0.4  # a step runs only if it can get at least this share of its planned budget


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


# ----------------------------------------------------------------------------- arguments


def _parse_overrides(items, flag: str, parser: argparse.ArgumentParser) -> dict:
    """``["learning_rate=0.02", ...]`` -> ``{"learning_rate": 0.02}``, checked against TrainConfig."""
    import typing  # noqa: PLC0415

    from unet_tutorial.train import TrainConfig, _parse_bool  # noqa: PLC0415 (the CLI's reading of true/false)

    hints = typing.get_type_hints(TrainConfig)
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    result = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            parser.error(f"{flag} takes FIELD=VALUE, got {item!r}.")
        if key not in fields:
            parser.error(f"{flag}: unknown TrainConfig field {key!r}; fields: {', '.join(fields)}.")
        if key in RESERVED_FIELDS:
            parser.error(f"{flag}: {key} is set by the run itself and cannot be changed.")
        kind = hints[key]
        try:
            result[key] = _parse_bool(text) if kind is bool else kind(text)
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"{flag} {key}: cannot read {text!r} as {kind.__name__} ({error}).")
    return result


def _check_config(preset: str, overrides: dict, flag: str, parser) -> None:
    from unet_tutorial.train import TrainConfig  # noqa: PLC0415

    try:
        TrainConfig.preset(preset, **overrides)
    except ValueError as error:
        parser.error(f"{flag}: {error}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/device_run.py", allow_abbrev=False,
        description="Chapter 7's run: ISBI-2012 and cell tracking training, evaluation, time to quality and "
                    "throughput, each within a wall-time budget; small artifacts with provenance in --out.",
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="gpu",
                        help="gpu: the paper preset on the lent GPU (default); cpu: the cpu-tiny stand-in")
    parser.add_argument("--out", help="folder for the artifacts ($OUT on the device machine)")
    parser.add_argument("--data", default=".carry/data", help="the packed .npz data (default .carry/data)")
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
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and check everything before any step starts (errors exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        parser.error(f"KERAS_BACKEND={backend}: the device run uses the JAX backend (the GPU machine has no TensorFlow).")
    os.environ["KERAS_BACKEND"] = "jax"
    scale = SCALES[args.scale]
    parts = ("isbi", "ctc", "bench")
    args.parts = parts if args.only is None else tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(args.parts) - set(parts))
    if unknown or not args.parts:
        parser.error(f"--only takes a comma-separated list of {', '.join(parts)}; got {args.only!r}.")
    args.isbi_overrides = {**scale.isbi_overrides, **_parse_overrides(args.isbi_set, "--isbi-set", parser)}
    args.ctc_overrides = {**scale.ctc_overrides, **_parse_overrides(args.ctc_set, "--ctc-set", parser)}
    if int(args.isbi_overrides.get("validation_folds", 1)) < 2:
        parser.error("--isbi-set validation_folds must be >= 2: ISBI is scored on held-out slices only.")
    _check_config(scale.preset, args.isbi_overrides, "--isbi-set", parser)
    _check_config(scale.preset, {**args.ctc_overrides, "dataset": CTC_NAMES[0]}, "--ctc-set", parser)
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
        parser.error(f"--data {args.data} holds no isbi2012.npz; run `bash scripts/prepare_device_run.sh` first.")
    if args.scale == "gpu" and shutil.which("nvidia-smi") is None:
        parser.error("--scale gpu needs an NVIDIA GPU (no nvidia-smi here); use --scale cpu for the CPU stand-in.")
    return args


# ----------------------------------------------------------------------------- the plan


def _train_argv(preset: str, overrides: dict, dataset: str, sequence: str | None, output: str) -> list[str]:
    argv = ["train", "--preset", preset, "--dataset", dataset, "--output", output, "--quiet"]
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
    batch = "1"  # one whole-image tile per forward pass: a larger batch would be padded with empty tiles
    steps = []
    if "isbi" in args.parts:
        run = str(runs / "isbi2012")
        folds = str(args.isbi_overrides["validation_folds"])
        fold = str(args.isbi_overrides.get("validation_fold", 0))
        probabilities, table = str(runs / "isbi2012-heldout.npz"), str(runs / "isbi2012-table1.csv")
        steps.append(Step("isbi-train", "isbi-train", [_train_argv(scale.preset, args.isbi_overrides, "isbi2012", None, run)],
                          args.budgets["isbi-train"], info={"run": run}))
        steps.append(Step("isbi-eval", "isbi-eval", [
            ["predict", "--model", "{model}", "--dataset", "isbi2012", "--split", "train", "--fold", fold, "--folds", folds,
             "--tta", "--batch-size", batch, "--quiet", "--output", probabilities],
            ["evaluate", "--probabilities", probabilities, "--dataset", "isbi2012", "--fold", fold, "--folds", folds,
             "--tta", "--quiet", "--csv", table, "--markdown", table.replace(".csv", ".md")],
        ], args.budgets["isbi-eval"], needs="isbi-train", info={"probabilities": probabilities, "table": table}))
    if "ctc" in args.parts:
        for name in CTC_NAMES:
            for train_sequence, test_sequence in (("01", "02"), ("02", "01")):
                key = f"{name} {train_sequence}"
                run = str(runs / f"{name}-{train_sequence}")
                probabilities = str(runs / f"{name}-{train_sequence}-on-{test_sequence}.npz")
                table = probabilities.replace(".npz", ".csv")
                steps.append(Step(f"ctc-train {key}", "ctc-train",
                                  [_train_argv(scale.preset, args.ctc_overrides, name, train_sequence, run)],
                                  args.budgets["ctc-train"], info={"run": run, "dataset": name,
                                                                    "train": train_sequence, "test": test_sequence}))
                tta = ["--tta"] if scale.ctc_tta else []
                steps.append(Step(f"ctc-eval {key}", "ctc-eval", [
                    ["predict", "--model", "{model}", "--dataset", name, "--sequence", test_sequence, *tta,
                     "--batch-size", batch, "--quiet", "--output", probabilities],
                    ["evaluate", "--probabilities", probabilities, "--dataset", name, "--sequence", test_sequence,
                     *tta, "--quiet", "--csv", table],
                ], args.budgets["ctc-eval"], needs=f"ctc-train {key}",
                    info={"dataset": name, "train": train_sequence, "test": test_sequence, "tta": scale.ctc_tta,
                          "probabilities": probabilities, "table": table}))
    if "bench" in args.parts:
        spec = {**scale.bench, "variants": [list(v) for v in BENCH_VARIANTS], "out": str(runs / "bench.jsonl")}
        steps.append(Step("bench", "bench", [spec], args.budgets["bench"], info={"out": spec["out"]}))
    return steps


def print_plan(args, steps) -> None:
    scale = SCALES[args.scale]
    print(f"plan: scale {scale.name} (preset {scale.preset}), total budget {args.budget_s:.0f} s, "
          f"checkpoints in {args.runs_dir}")
    print(f"  ISBI overrides: {args.isbi_overrides}\n  CTC overrides:  {args.ctc_overrides}")
    for step in steps:
        print(f"  {step.name:<28} {step.planned_s:5.0f} s")
    print(f"  {'sum of planned budgets':<28} {sum(s.planned_s for s in steps):5.0f} s")


# ----------------------------------------------------------------------------- child processes


class _NoTensorFlow:
    """Import hook: ``import tensorflow`` fails, as on the device machine (proves the JAX-only path)."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (the device run is JAX-only)", name=name)
        return None


def _worker(argv: list[str]) -> int:
    """Child process: the package CLI (or the bench) on the carried data, with TensorFlow unavailable."""
    data, scale, payload = argv[0], argv[1], json.loads(argv[2])
    sys.meta_path.insert(0, _NoTensorFlow())
    os.environ["KERAS_BACKEND"] = "jax"
    # A compilation cache shared by the steps: building a Keras model on JAX compiles one small
    # program per weight shape (the initializers), which costs seconds in every new process;
    # later steps also reuse the training step of the same shapes.
    try:
        import jax  # noqa: PLC0415

        jax.config.update("jax_compilation_cache_dir", os.environ.get("UNET_DEVICE_JAX_CACHE") or
                          os.path.join(tempfile.gettempdir(), f"unet-jax-cache-{scale}"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception as error:  # a JAX without these options: compile again
        print(f"note: no persistent compilation cache ({error})")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from carried_data import use_carried_data  # noqa: PLC0415

    use_carried_data(data)
    from unet_tutorial.__main__ import main  # noqa: PLC0415

    for command in payload:
        if isinstance(command, dict):
            _bench_variants(command)
            continue
        print(f"$ python -m unet_tutorial {shlex.join(command)}", flush=True)
        status = main(command)
        if status:
            return status
    return 0


def _bench_variants(spec: dict) -> None:
    """``bench.bench`` for each (dtype policy, jit_compile); one JSON line per variant as soon as it is done.

    The same measurement as ``python -m unet_tutorial bench --preset P --batch-size B
    --input-size T --dtype-policy D --jit-compile J --steps S --warmup W``, except that
    the input pipeline (the same for every variant, on the CPU) is timed on 3 batches for the
    first variant and on 1 for the others: at 572x572 with elastic deformation each batch of 8
    takes about a second of CPU time, which the GPU's budget is better spent on.
    """
    from unet_tutorial.bench import bench  # noqa: PLC0415

    out = pathlib.Path(spec["out"])
    for index, (dtype_policy, jit_compile) in enumerate(spec["variants"]):
        command = (f"python -m unet_tutorial bench --preset {spec['preset']} --batch-size {spec['batch_size']} "
                   f"--input-size {spec['input_size']} --dtype-policy {dtype_policy} --jit-compile {jit_compile} "
                   f"--steps {spec['steps']} --warmup {spec['warmup']}")
        print(f"$ {command}", flush=True)
        started = time.perf_counter()
        try:
            result = bench(spec["preset"], batch_size=spec["batch_size"], input_size=spec["input_size"],
                           dtype_policy=dtype_policy, jit_compile=jit_compile, steps=spec["steps"],
                           warmup=spec["warmup"], pipeline_batches=3 if index == 0 else 1)
            row = {**result.as_dict(), "pipeline_batches_timed": 3 if index == 0 else 1}
            print(result.format(), flush=True)
        except Exception as error:  # record and go on with the next variant
            row = {"dtype_policy": dtype_policy, "jit_compile": jit_compile, "error": f"{type(error).__name__}: {error}"}
            print(f"error: {row['error']}", flush=True)
        row.update(command=command, wall_s=round(time.perf_counter() - started, 2))
        with open(out, "a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")


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


def _read_json(path) -> dict | None:
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_step(step: Step, args, budget: float, log_dir: pathlib.Path) -> None:
    """Run one step's child process for at most ``budget`` seconds; note each epoch's wall time."""
    commands = [[c.replace("{model}", step.info.get("model", "")) for c in command] if isinstance(command, list)
                else command for command in step.commands]
    step.commands = commands
    log_path = log_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", step.name) + ".log")
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1",
                   "UNET_DEVICE_JAX_CACHE": str(args.runs_dir / "jax-cache")}
    environment.pop("JAX_PLATFORMS")  # the driver's own "cpu"; the child may use the GPU
    if args.original_jax_platforms is not None:
        environment["JAX_PLATFORMS"] = args.original_jax_platforms
    history_path = pathlib.Path(step.info["run"]) / "history.json" if "run" in step.info else None
    if "run" in step.info:
        shutil.rmtree(step.info["run"], ignore_errors=True)  # a fresh run, never a resumed one
    epoch_wall, seen = [], 0
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, str(pathlib.Path(__file__).resolve()), "_worker", str(pathlib.Path(args.data).resolve()),
             args.scale, json.dumps(commands)],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        status = None
        while status is None:
            try:
                status = process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if history_path is not None:
                history = _read_json(history_path) if history_path.is_file() else None
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
        step.info["epoch_wall_s"] = epoch_wall
        state = _read_json(pathlib.Path(step.info["run"]) / "state.json")
        if state is None:
            step.status += "; no epoch completed"
        else:
            final = pathlib.Path(step.info["run"]) / "model.keras"
            step.info["model"] = str(final if final.is_file() else pathlib.Path(step.info["run"]) / state["checkpoint"])
            step.info["state"] = state
            if step.status.startswith(("ok", "stopped")):
                step.status = step.status.replace("ok", "ok (all epochs)")


# ----------------------------------------------------------------------------- provenance and artifacts


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_version() -> str:
    text = (ROOT / "unet_tutorial" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'__version__ = "([^"]+)"', text)
    return found.group(1) if found else "unknown"


def _gpus() -> list[dict]:
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True)
    gpus = []
    for line in result.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _source() -> dict:
    """Commit and uncommitted files: from git here, from .carry/source.json on the device (no .git there)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout
        return {"commit": commit, "uncommitted_changes": [line[3:] for line in status.splitlines()], "from": "git"}
    except (OSError, subprocess.CalledProcessError):
        saved = _read_json(ROOT / ".carry" / "source.json") or {}
        return {"commit": saved.get("commit", "unknown"), "uncommitted_changes": saved.get("uncommitted_changes", []),
                "from": ".carry/source.json (written by prepare_device_run.sh)"}


def make_provenance(args, started_at: datetime.datetime) -> dict:
    gpus = _gpus()
    cores = os.cpu_count()
    stand_in = args.scale != "gpu" or not gpus
    if gpus:
        hardware = (f"{len(gpus)}x {gpus[0]['name']} ({gpus[0]['memory']}, driver {gpus[0]['driver']}); "
                    f"{cores} CPU cores ({_cpu_model()})")
    else:
        hardware = f"CPU only: {cores} cores ({_cpu_model()}), no GPU"
    run_kind = f"CPU stand-in ({cores} cores), not the GPU run" if stand_in else f"GPU run on {gpus[0]['name']}"
    versions = {"python": platform.python_version(), "unet_tutorial": _package_version()}
    for distribution in ("keras", "jax", "jaxlib", "numpy", "scipy", "scikit-image", "tifffile", "optree"):
        versions[distribution] = _version(distribution)
    for distribution in sorted(d.metadata["Name"] for d in importlib.metadata.distributions()
                               if (d.metadata["Name"] or "").lower().startswith("jax-cuda")):
        versions[distribution] = _version(distribution)
    source = _source()
    return {
        "run_kind": run_kind,
        "stand_in": stand_in,
        "command": os.environ.get("UNET_DEVICE_COMMAND") or shlex.join(["python", "scripts/device_run.py", *sys.argv[1:]]),
        "commit": source["commit"],
        "uncommitted_changes": source["uncommitted_changes"],
        "backend": "jax",
        "hardware": hardware,
        "date": started_at.isoformat(timespec="seconds"),
        "scale": args.scale,
        "preset": SCALES[args.scale].preset,
        "budget_s": args.budget_s,
        "versions": versions,
        "platform": platform.platform(),
    }


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
    history = {k: v for k, v in (state.get("history") or {}).items()}
    return {"history": history, "epoch_wall_s": step.info.get("epoch_wall_s", []),
            "initial_metrics": state.get("initial_metrics", {}), "held_out": state.get("held_out", []),
            "config": state.get("config", {}), "status": step.status, "wall_s": step.wall_s,
            "command": "python -m unet_tutorial " + shlex.join(step.commands[0])}


def time_to_quality(entry: dict, goal: float = ISBI_GOAL_PIXEL_ERROR) -> dict:
    """First epoch whose held-out pixel error is <= goal; its wall time since the command started."""
    errors = entry["history"].get("val_pixel_error", [])
    walls, elapsed = entry.get("epoch_wall_s", []), entry["history"].get("elapsed_seconds", [])
    result = {"goal_pixel_error": goal, "reached": False, "epochs_run": len(errors),
              "best_pixel_error": min(errors) if errors else None,
              "paper": "about 10 hours on an NVIDIA Titan (6 GB) for the whole training (Ronneberger et al. 2015, Sec. 3)",
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


def write_artifacts(out: pathlib.Path, provenance: dict, steps: list[Step], wall_s: float) -> None:
    """Rewrite every artifact from the steps done so far (atomically, each file on its own)."""
    import numpy as np  # noqa: PLC0415

    provenance = {**provenance, "wall_time_s": round(wall_s, 1),
                  "steps": [{"name": s.name, "status": s.status, "planned_s": s.planned_s, "budget_s": s.budget_s,
                             "wall_s": s.wall_s,
                             "commands": [("python -m unet_tutorial " + shlex.join(c)) if isinstance(c, list)
                                          else "bench variants: " + ", ".join(f"{d}/jit {j}" for d, j in c["variants"])
                                          for c in s.commands]} for s in steps]}
    core = {key: provenance[key] for key in ("run_kind", "stand_in", "command", "commit", "backend", "hardware", "date")}
    by_name = {s.name: s for s in steps}

    history = {"provenance": core, "isbi": None, "ctc": {}}
    metrics = {"provenance": core, "table1": None, "table2": {name: [] for name in CTC_NAMES}, "time_to_quality": None}
    arrays = {}
    if "isbi-train" in by_name and by_name["isbi-train"].info.get("state"):
        history["isbi"] = _history_entry(by_name["isbi-train"])
        metrics["time_to_quality"] = time_to_quality(history["isbi"])
    isbi_eval = by_name.get("isbi-eval")
    if isbi_eval and isbi_eval.status == "ok":
        note_path = pathlib.Path(isbi_eval.info["table"].replace(".csv", ".md"))
        note = note_path.read_text(encoding="utf-8").strip().splitlines()[-1] if note_path.is_file() else ""
        metrics["table1"] = {"rows": _read_table(isbi_eval.info["table"]), "note": note,
                             "model": pathlib.Path(isbi_eval.info.get("model", "")).name}
        with np.load(isbi_eval.info["probabilities"]) as npz:
            probabilities, slices = npz["probabilities"], npz["slices"]
        keep = [0, len(slices) - 1]
        arrays["isbi_membrane"] = np.round(probabilities[keep, ..., 0] * 255).astype(np.uint8)
        arrays["isbi_slices"] = slices[keep].astype(np.int32)
    for step in steps:
        if step.kind == "ctc-train" and step.info.get("state"):
            history["ctc"][f"{step.info['dataset']} {step.info['train']}"] = _history_entry(step)
        if step.kind == "ctc-eval" and step.status == "ok":
            name, train_sequence, test_sequence = step.info["dataset"], step.info["train"], step.info["test"]
            rows = _read_table(step.info["table"])
            with np.load(step.info["probabilities"]) as npz:
                probabilities = npz["probabilities"]
            ours = rows[-1]
            ours["name"] = f"this book, trained on {train_sequence}"
            how = "with TTA" if step.info["tta"] else "without TTA"
            ours["measured_on"] = (f"{name} sequence {test_sequence}, {len(probabilities)} annotated frames, {how}; "
                                   f"trained on sequence {train_sequence}")
            metrics["table2"][name].append({"train": train_sequence, "test": test_sequence, "paper": rows[0], **ours})
            prefix = f"ctc_{name}_train{train_sequence}"
            arrays[f"{prefix}_cell"] = np.round(probabilities[0, ..., 1] * 255).astype(np.uint8)
            arrays[f"{prefix}_index"] = np.int32(0)  # index into the annotated frames of the test sequence
    bench_rows = []
    if "bench" in by_name and pathlib.Path(by_name["bench"].info["out"]).is_file():
        bench_rows = [json.loads(line) for line in pathlib.Path(by_name["bench"].info["out"]).read_text().splitlines() if line]
    bench = {"provenance": core, "results": bench_rows, "anchor": NVIDIA_ANCHOR,
             "flops_note": "convolution FLOPs only (multiply-add = 2); training counted as 3x forward (bench.py)"}

    out.mkdir(parents=True, exist_ok=True)

    def dump(name, write):
        temporary = out / f".{name}.tmp"
        write(temporary)
        os.replace(temporary, out / name)

    for name, content in (("provenance.json", provenance), ("history.json", history), ("metrics.json", metrics),
                          ("bench.json", bench)):
        dump(name, lambda p, c=content: p.write_text(json.dumps(c, indent=1, default=float) + "\n", encoding="utf-8"))

    def write_npz(path):
        with open(path, "wb") as file:
            np.savez_compressed(file, provenance=np.array(json.dumps(core)), **arrays)

    dump("predictions.npz", write_npz)
    log = "\n".join(f"===== {s.name}: {s.status}, {s.wall_s} s of {s.budget_s} s\n{_tail(s.log, 120)}"
                    for s in steps if s.wall_s is not None)
    dump("run.log", lambda p: p.write_text(log + "\n", encoding="utf-8"))


def _tail(text: str, lines: int) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join((["..."] if len(kept) > lines else []) + kept[-lines:])


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return _worker(argv[1:])
    original_jax_platforms = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = "cpu"  # this driver imports keras to check configs: keep it off the GPU
    args = parse_args(argv)
    args.original_jax_platforms = original_jax_platforms
    steps = args.steps
    print_plan(args, steps)
    if args.dry_run:
        for step in steps:
            for command in step.commands:
                shown = ("python -m unet_tutorial " + shlex.join(command)) if isinstance(command, list) else f"bench {command}"
                print(f"  [{step.name}] {shown}")
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
            print(_tail(step.log, 8))
        by_name[step.name] = step
        print(f"-- {step.name}: {step.status}" + (f" after {step.wall_s} s" if step.wall_s is not None else ""), flush=True)
        write_artifacts(out, provenance, steps, time.perf_counter() - started)
    total = time.perf_counter() - started
    write_artifacts(out, provenance, steps, total)
    print(f"\nsummary ({provenance['run_kind']}, {total:.0f} s of {args.budget_s:.0f} s):")
    for step in steps:
        wall = f"{step.wall_s:6.1f} s" if step.wall_s is not None else "      -"
        print(f"  {step.name:<28} {wall}  {step.status}")
    metrics = _read_json(out / "metrics.json") or {}
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
    for row in (_read_json(out / "bench.json") or {}).get("results", []):
        if "error" in row:
            print(f"  bench {row['dtype_policy']} jit {row['jit_compile']}: {row['error']}")
        else:
            print(f"  bench {row['dtype_policy']:<15} jit {row['jit_compile']:<5}: train {row['train_images_per_s']:8.2f} img/s "
                  f"({row['train_tflops_per_s']:.3f} TFLOP/s), inference {row['inference_images_per_s']:8.2f} img/s")
    print(f"artifacts in {out}: {', '.join(ARTIFACTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
