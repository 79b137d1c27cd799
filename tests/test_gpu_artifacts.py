"""Chapter 7's artifacts and the command that makes them, ``python -m unet_tutorial reproduce`` (issue 9).

* Every artifact the chapter reads exists in ``book/artifacts/chapter7/``, is
  small, holds no data images or model weights, and carries the provenance of
  one run (command, commit, backend, hardware, date); the chapter shows their
  scores only when that provenance says the run was on a GPU (the built page
  is checked in tests/test_recorded_runs.py).
* ``reproduce`` (``unet_tutorial/reproduce*.py``; ``scripts/device_run.sh``
  calls it on the GPU machine): its arguments are checked before any step
  starts, the GPU plan fits the device's 10-minute call, every step reads the
  packed data through the loaders (``--data-dir``), and the artifacts are
  written (with provenance) even when steps failed. The packed data themselves
  are tested in tests/test_packed.py.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from unet_tutorial import predictions
from unet_tutorial import reproduce_artifacts as artifacts
from unet_tutorial import reproduce_plan as plan

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "book" / "artifacts" / "chapter7"
CHAPTERS = {language: REPO_ROOT / "book" / language / "07_gpu_training.md" for language in ("ko", "en")}
PROVENANCE_KEYS = ("command", "commit", "backend", "hardware", "date", "stand_in", "run_kind")
STAND_IN_NOTICE = ":class: warning stand-in"
DEVICE_CALL_LIMIT_S = 600  # the device tool's limit for one command (library/device/README.md)


# ----------------------------------------------------------------------------- the committed artifacts


def artifacts_read_by(chapter: pathlib.Path) -> set[str]:
    """File names passed to ``artifact("...")`` in the chapter's code cells."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from test_book import code_cells

    code = "\n".join(code_cells(chapter))
    return set(re.findall(r"""\bartifact\(\s*["']([^"']+)["']\s*\)""", code))


def provenance_of(path: pathlib.Path) -> dict:
    if path.suffix == ".npz":  # the one prediction format: the provenance is in its metadata
        return predictions.load_predictions(path).metadata["provenance"]
    content = json.loads(path.read_text(encoding="utf-8"))
    return content if path.name == "provenance.json" else content["provenance"]


def test_the_chapter_reads_artifacts_and_both_languages_read_the_same():
    names = {language: artifacts_read_by(chapter) for language, chapter in CHAPTERS.items()}
    assert names["ko"] == names["en"]
    assert {"provenance.json", "metrics.json"} <= names["ko"]


def test_every_artifact_the_chapter_reads_exists_and_carries_its_provenance():
    main = json.loads((ARTIFACTS / "provenance.json").read_text(encoding="utf-8"))
    for name in sorted(artifacts_read_by(CHAPTERS["ko"])):
        path = ARTIFACTS / name
        assert path.is_file(), f"chapter 7 reads {name}, which is missing from {ARTIFACTS}"
        provenance = provenance_of(path)
        missing = [key for key in PROVENANCE_KEYS if key not in provenance or provenance[key] in (None, "")]
        assert missing == [], f"{name}: provenance lacks {missing}"
        assert re.fullmatch(r"[0-9a-f]{40}", provenance["commit"]), f"{name}: commit {provenance['commit']!r}"
        assert provenance["backend"] == "jax", f"{name}: the device run uses the JAX backend"
        assert datetime.datetime.fromisoformat(provenance["date"]).tzinfo is not None, f"{name}: date needs a time zone"
        for key in PROVENANCE_KEYS:  # all from one run
            assert provenance[key] == main[key], f"{name}: {key} differs from provenance.json"
    assert main["steps"] and all({"name", "status", "budget_s", "wall_s", "commands"} <= set(s) for s in main["steps"])
    assert main["wall_time_s"] > 0 and main["versions"]["keras"]


def test_the_stand_in_flag_matches_what_the_chapter_says():
    provenance = json.loads((ARTIFACTS / "provenance.json").read_text(encoding="utf-8"))
    assert ("stand-in" in provenance["run_kind"]) == provenance["stand_in"]
    if not provenance["stand_in"]:
        assert "GPU" in provenance["hardware"] or "NVIDIA" in provenance["hardware"]
    for chapter in CHAPTERS.values():
        text = chapter.read_text(encoding="utf-8")
        assert STAND_IN_NOTICE not in text, f"{chapter}: the stand-in box is gone; the recorded CPU runs are the results"
        assert 'if gpu_provenance["stand_in"]:' in text, f"{chapter}: GPU scores must be shown only from a GPU run"


def test_artifacts_are_small_and_hold_neither_data_nor_weights():
    files = [p for p in ARTIFACTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2 * 2**20
    assert not [p for p in files if p.suffix in (".keras", ".h5", ".weights")]
    for path in sorted(ARTIFACTS.glob("*.npz")):
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                assert not re.search(r"image|label|mask", key), f"{path.name} must not re-host data ({key})"
                # uint8 probabilities, integer slice indices, the metadata (a JSON string holding the provenance)
                assert npz[key].dtype in (np.uint8, np.int32, np.int64) or key == "metadata", f"{key}: {npz[key].dtype}"


def test_metrics_hold_the_papers_rows_and_a_consistent_time_to_quality():
    from unet_tutorial import evaluate

    metrics = json.loads((ARTIFACTS / "metrics.json").read_text(encoding="utf-8"))
    history = json.loads((ARTIFACTS / "history.json").read_text(encoding="utf-8"))
    paper = metrics["table1"]["rows"][0]
    for column, value in evaluate.PAPER_TABLE1[0].values.items():
        assert paper[column] == pytest.approx(value)
    ours = metrics["table1"]["rows"][-1]
    assert 0 <= ours["pixel_error"] <= 1 and 0 <= ours["rand_error"] <= 1 and ours["warping_error"] >= 0
    assert "fold 0 of 5" in ours["measured_on"] and "TTA" in ours["measured_on"]
    for name, rows in metrics["table2"].items():
        for row in rows:
            assert row["paper"]["seg"] == pytest.approx(evaluate.PAPER_TABLE2[name].values["seg"])
            assert row["train"] != row["test"], "cell tracking scores must come from the other sequence"
    assert metrics["time_to_quality"] == artifacts.time_to_quality(history["isbi"])
    held_out = set(history["isbi"]["held_out"])
    assert held_out == set(range(6)), "chapter 7 says slices 0-5 are held out"
    assert set(predictions.load_predictions(ARTIFACTS / "predictions.npz").slices.tolist()) <= held_out


# ----------------------------------------------------------------------------- the device command


@pytest.fixture
def device_env(monkeypatch):
    """The environment changes parse_args/main make, undone after each test."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)


@pytest.mark.parametrize("argv, message", [
    (["--isbi-set", "nonsense=1"], "unknown TrainConfig field 'nonsense'"),
    (["--ctc-set", "dataset=isbi2012"], "set by the run itself"),
    (["--isbi-set", "learning_rate=fast"], "cannot read 'fast' as float"),
    (["--isbi-set", "augment=perhaps"], "cannot read 'perhaps' as bool"),
    (["--isbi-set", "optimizer=rmsprop"], "optimizer must be one of"),
    (["--isbi-set", "learning_rate"], "takes FIELD=VALUE"),
    (["--isbi-set", "validation_folds=1"], "held-out slices only"),
    (["--only", "isbi,speed"], "--only takes"),
    (["--budget-s", "60"], "too small for these steps"),
    (["--scale", "tpu"], "invalid choice"),
    (["--step-budget", "warmup=10"], "unknown step kind 'warmup'"),
    (["--step-budget", "isbi-train=long"], "not a number of seconds"),
    (["--step-budget", "bench=0"], "must be > 0 seconds"),
])
def test_the_device_command_rejects_bad_arguments(device_env, capsys, argv, message):
    with pytest.raises(SystemExit) as raised:
        plan.parse_args(["--dry-run", *argv])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_the_device_command_checks_out_data_gpu_and_backend(device_env, capsys, tmp_path, monkeypatch):
    def error_of(argv):
        with pytest.raises(SystemExit) as raised:
            plan.parse_args(argv)
        assert raised.value.code == 2
        return capsys.readouterr().err

    assert "--out is required" in error_of(["--scale", "cpu"])
    assert "no isbi2012.npz" in error_of(["--scale", "cpu", "--out", str(tmp_path), "--data", str(tmp_path)])
    (tmp_path / "isbi2012.npz").write_bytes(b"")
    monkeypatch.setattr(plan.shutil, "which", lambda name: None)
    assert "needs an NVIDIA GPU" in error_of(["--out", str(tmp_path), "--data", str(tmp_path)])
    args = plan.parse_args(["--scale", "cpu", "--out", str(tmp_path), "--data", str(tmp_path)])
    assert args.scale == "cpu" and len(args.steps) == 11
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert "uses the JAX backend" in error_of(["--dry-run"])


def test_the_gpu_plan_fits_one_device_call_and_keeps_the_papers_terms(device_env):
    from unet_tutorial.config import TrainConfig

    longer = plan.parse_args(["--dry-run", "--only", "isbi", "--step-budget", "isbi-train=400"])
    assert [s.planned_s for s in longer.steps] == [400, plan.SCALES["gpu"].budgets["isbi-eval"]]
    assert longer.budget_s >= 400 + longer.steps[1].planned_s
    args = plan.parse_args(["--dry-run", "--isbi-set", "learning_rate=0.02"])
    names = [step.name for step in args.steps]
    assert names[:2] == ["isbi-train", "isbi-eval"] and names[-1] == "bench" and len(names) == 11
    assert sum(step.planned_s for step in args.steps) <= args.budget_s <= DEVICE_CALL_LIMIT_S - 90
    config = TrainConfig.preset("paper", **args.isbi_overrides)
    paper = TrainConfig.preset("paper")
    for field in ("depth", "base_filters", "padding", "tile_size", "optimizer", "momentum", "batch_size", "w0",
                  "sigma", "elastic", "elastic_sigma", "mixed_precision"):
        assert getattr(config, field) == getattr(paper, field), field
    assert config.learning_rate == 0.02 and config.validation_folds == 5 and config.validation_fold == 0
    train_command = args.steps[0].commands[0]
    assert train_command[:3] == ["train", "--preset", "paper"] and "--learning-rate" in train_command
    predict, evaluate = args.steps[1].commands
    assert predict[0] == "predict" and "--tta" in predict and evaluate[0] == "evaluate" and "--csv" in evaluate
    for step in args.steps:
        if step.kind == "ctc-eval":
            assert step.info["train"] != step.info["test"]
            assert ["--sequence", step.info["test"]] == predict_sequence(step.commands[0])


def predict_sequence(command: list[str]) -> list[str]:
    index = command.index("--sequence")
    return command[index: index + 2]


def test_time_to_quality_is_the_first_epoch_at_the_goal():
    entry = {"history": {"val_pixel_error": [0.2, 0.09, 0.069, 0.05], "elapsed_seconds": [10, 20, 30, 40]},
             "epoch_wall_s": [25, 35, 45, 55], "config": {"steps_per_epoch": 100}}
    quality = artifacts.time_to_quality(entry, goal=0.07)
    assert quality["reached"] and quality["epoch"] == 3 and quality["wall_s"] == 45 and quality["steps"] == 300
    assert quality["fit_elapsed_s"] == 30 and quality["best_pixel_error"] == 0.05
    entry["history"]["val_pixel_error"] = [0.2, 0.1]
    quality = artifacts.time_to_quality(entry, goal=0.07)
    assert not quality["reached"] and quality["best_pixel_error"] == 0.1


def test_artifacts_are_written_with_provenance_even_when_steps_failed(device_env, tmp_path):
    args = plan.parse_args(["--scale", "cpu", "--dry-run"])
    steps = args.steps
    steps[0].status, steps[0].wall_s, steps[0].budget_s, steps[0].log = "failed (exit 1)", 3.0, 90.0, "Traceback ..."
    for step in steps[1:]:
        step.status = "skipped: isbi-train left no model"
    provenance = artifacts.make_provenance(args, datetime.datetime.now(datetime.timezone.utc))
    artifacts.write_artifacts(tmp_path, provenance, steps, wall_s=3.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(artifacts.ARTIFACTS)
    for name in artifacts.ARTIFACTS:
        if name != "run.log":
            assert provenance_of(tmp_path / name)["stand_in"] is True
    assert json.loads((tmp_path / "metrics.json").read_text())["table1"] is None
    assert "failed (exit 1)" in (tmp_path / "run.log").read_text()


def test_every_step_reads_the_packed_data_through_the_loaders(device_env, tmp_path):
    args = plan.parse_args(["--dry-run", "--data", str(tmp_path)])
    assert {step.kind for step in args.steps} == set(plan.SCALES["gpu"].budgets)
    for step in args.steps:
        for command in step.commands:
            if isinstance(command, list):  # train, predict, evaluate: the loaders read the packed folder
                assert command[command.index("--data-dir") + 1] == str(tmp_path.resolve()), command


def test_reproduce_is_a_package_command_whose_plan_and_errors_need_no_keras(device_env, capsys):
    code = ("import sys; from unet_tutorial.__main__ import main; status = main(['reproduce', '--scale', 'cpu', "
            "'--dry-run']); print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
            "{'keras', 'jax', 'tensorflow'})); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
    assert "[isbi-train] python -m unet_tutorial train --preset cpu-tiny --dataset isbi2012" in result.stdout
    from unet_tutorial.__main__ import main

    with pytest.raises(SystemExit) as raised:
        main(["reproduce", "--dry-run", "--ctc-set", "nonsense=1"])
    assert raised.value.code == 2
    assert "python -m unet_tutorial reproduce: error: --ctc-set unknown TrainConfig field" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_the_cpu_stand_in_runs_end_to_end_on_packed_data(shared_data, tmp_path):
    """``reproduce --scale cpu --only isbi``, one short epoch: child processes, packed data, artifacts."""
    from unet_tutorial import datasets

    datasets.pack_data(shared_data, tmp_path / "data", names=("isbi2012",))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "unet_tutorial", "reproduce", "--scale", "cpu", "--only", "isbi",
               "--data", str(tmp_path / "data"), "--out", str(out), "--runs", str(tmp_path / "runs"),
               "--isbi-set", "epochs=1", "--isbi-set", "steps_per_epoch=5",
               "--step-budget", "isbi-eval=300"]  # the warping error's sweep takes minutes on 2 busy cores
    # The unpacked data are out of reach: the steps can only read the packed folder given as --data-dir.
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT),
                   "UNET_TUTORIAL_DATA": str(tmp_path / "nowhere")}
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert [step["status"] for step in provenance["steps"]] == ["ok (all epochs)", "ok"], result.stdout[-3000:]
    assert provenance["stand_in"] is True and provenance["command"].startswith("python -m unet_tutorial reproduce")
    assert sorted(p.name for p in out.iterdir()) == sorted(artifacts.ARTIFACTS)
    ours = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["table1"]["rows"][-1]
    assert 0 <= ours["pixel_error"] <= 1 and "fold 0 of 5" in ours["measured_on"]
    saved = predictions.load_predictions(out / "predictions.npz")
    assert saved.slices.tolist() == [0, 5] and saved.probabilities.shape == (2, 512, 512)
    assert saved.metadata["provenance"]["commit"] == provenance["commit"]
