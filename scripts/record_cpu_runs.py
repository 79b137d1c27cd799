"""The book's recorded CPU runs: ISBI-2012 (fold 0 held out) and the four cell tracking runs, on 2 cores.

Each run trains the ``cpu`` preset (chosen by ``scripts/recipe_study.py`` on the
tuning block, never on held-out data) for a wall-clock budget, its epochs
planned from a step measured on this machine (``unet_tutorial.budget``), then is scored
once on data it never trained on: ISBI-2012 slices 0-5 with the challenge's
metrics and test-time augmentation, each cell tracking sequence with SEG on the
other sequence. The artifacts go to ``--out`` (``book/artifacts/cpu_runs``):
``metrics.json`` (Tables 1 and 2), ``history-<run>.json`` (held-out quality
against training minutes: ISBI's pixel error each epoch; for a cell tracking
run, SEG on the other sequence of a snapshot of the network every
SNAPSHOT_MINUTES, scored after training without test-time augmentation, so the
curve costs the run no training time), ``predictions-<dataset>.npz`` (two images,
uint8) and ``provenance.json`` (command, commit, backend, hardware, wall time,
date of each run). Every file is written atomically.

Runs are resumable: run the same command again and each run continues from its
last checkpoint in ``--runs`` (the budget counts the training before the
resume); a finished run trains no more and is scored again.

    nohup python scripts/record_cpu_runs.py > runs/record.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

# name -> (dataset, sequence trained on, training minutes): the goals' budgets, 90 (ISBI) and 30 (each CTC run)
RUNS = {
    "isbi2012": ("isbi2012", "01", 90.0),
    "PhC-C2DH-U373-01": ("PhC-C2DH-U373", "01", 30.0),
    "PhC-C2DH-U373-02": ("PhC-C2DH-U373", "02", 30.0),
    "DIC-C2DH-HeLa-01": ("DIC-C2DH-HeLa", "01", 30.0),
    "DIC-C2DH-HeLa-02": ("DIC-C2DH-HeLa", "02", 30.0),
}
PRESET = "cpu"
SNAPSHOT_MINUTES = 3.0  # cell tracking runs: a snapshot for the held-out SEG curve every 3 minutes of training
PREDICTION_IMAGES = 2  # images of each scored set kept as artifacts
CLASSES = {"gap": "class probabilities (background, cell)",
           "border-class": "class probabilities (background, cell interior, cell border)"}
BORDER_CLASS_STUDY = pathlib.Path("book/artifacts/cpu_runs/border_class_study.json")


def cell_targets(dataset: str, sequence: str, study: pathlib.Path = BORDER_CLASS_STUDY) -> str:
    """How a run on ``sequence`` teaches touching cells: the way ``scripts/border_class_study.py`` chose.

    ``book.chosen_cell_targets`` on the study's artifact ("gap" without one).
    """
    from unet_tutorial.book import chosen_cell_targets

    return chosen_cell_targets(json.loads(study.read_text()) if study.is_file() else {}, dataset, sequence)


def run_config(name: str, runs: pathlib.Path):
    """The run's data, split, budget and folder (its epochs are planned by :func:`planned_run`)."""
    from unet_tutorial.config import TrainConfig

    dataset, sequence, minutes = RUNS[name]
    if dataset == "isbi2012":  # fold 0 (slices 0-5) held out, scored each epoch, never trained on
        fields = dict(validation_folds=5, validation_fold=0)
    else:  # all annotated frames of one sequence; the other sequence is the held-out set
        fields = dict(sequence=sequence, validation_folds=1, cell_targets=cell_targets(dataset, sequence),
                      snapshot_minutes=SNAPSHOT_MINUTES)
    return TrainConfig.preset(PRESET, dataset=dataset, **fields, time_budget_s=minutes * 60,
                              output_dir=str(runs / name))


def planned_run(name: str, runs: pathlib.Path):
    """(config with the epochs that fill the budget on this machine, measured seconds a step): ``budget.planned_here``."""
    from unet_tutorial.budget import planned_here

    config, step_seconds = planned_here(run_config(name, runs), RUNS[name][2])
    print(f"   {name}: {step_seconds} s a step here, {config.epochs} epochs planned", flush=True)
    return config, step_seconds


def score_isbi(model, config, tta: bool) -> tuple[dict, np.ndarray, list[int]]:
    from unet_tutorial import datasets
    from unet_tutorial.evaluate import score_isbi_images
    from unet_tutorial.splits import held_out_split

    data = datasets.load_isbi2012()
    held_out = held_out_split(len(data.images), config.validation_folds, config.validation_fold)[1]
    scores, membrane = score_isbi_images(model, data.images[held_out], data.labels[held_out], depth=config.depth,
                                         padding=config.padding, tta=tta)
    return scores, membrane, [int(i) for i in held_out]


def score_ctc(model, config, tta: bool) -> tuple[dict, np.ndarray, list[int]]:
    from unet_tutorial import datasets
    from unet_tutorial.annotations import ignore_regions
    from unet_tutorial.config import TileConfig
    from unet_tutorial.evaluate import predict_stack, score_ctc_cells
    from unet_tutorial.metrics import cells_from_prediction
    from unet_tutorial.splits import other_sequence

    sequence = other_sequence(config.sequence)
    data = datasets.load_ctc(config.dataset, sequence)
    tile = TileConfig.whole_image(data.images[0].shape, config.depth, config.padding).tile_size
    probabilities = predict_stack(model, data.images, tta=tta, tile_size=tile, progress=False)  # (N, H, W, K)
    scores = {
        **score_ctc_cells(cells_from_prediction(probabilities), data.masks, ignore_regions(data.masks, data.markers)),
        "scored_sequence": sequence,
        "frames": len(data.images),
        "cell_targets": config.cell_targets,
    }
    return scores, probabilities, [int(f) for f in data.frame_numbers]


def held_out_curve(run_dir: pathlib.Path, config, final_model, final_minutes: float) -> dict:
    """SEG on the other sequence of each snapshot and of the final network, without test-time augmentation."""
    from unet_tutorial.callbacks import read_snapshots
    from unet_tutorial.evaluate import load_model

    # snapshots.json keeps minutes to 3 decimals: compare at that precision, or the last epoch's snapshot
    # (rounded down) would be scored again as an earlier point
    final_minutes = round(final_minutes, 3)
    earlier = [(minutes, path) for minutes, path in read_snapshots(run_dir) if minutes < final_minutes]
    curve = {"minutes": [], "seg": [], "tta": False}
    for minutes, model in [(minutes, load_model(path)) for minutes, path in earlier] + [(final_minutes, final_model)]:
        curve["minutes"].append(round(minutes, 3))
        curve["seg"].append(score_ctc(model, config, tta=False)[0]["seg"])
        print(f"   {minutes:.1f} min: SEG {curve['seg'][-1]:.3f} (no TTA)", flush=True)
    return curve


def record(name: str, runs: pathlib.Path, out: pathlib.Path, tta: bool) -> None:
    from unet_tutorial.evaluate import load_model
    from unet_tutorial.files import write_json_atomic
    from unet_tutorial.predictions import save_predictions
    from unet_tutorial.provenance import cpu_script_run
    from unet_tutorial.train import train

    config, step_seconds = planned_run(name, runs)
    run_dir = pathlib.Path(config.output_dir)
    resume = (run_dir / "state.json").is_file()
    started = time.perf_counter()
    history = train(config, resume=resume, verbose=2)
    state = json.loads((run_dir / "state.json").read_text())
    model = load_model(run_dir / "model.keras")
    scorer = score_isbi if config.dataset == "isbi2012" else score_ctc
    scored_at = time.perf_counter()
    scores, probability, images = scorer(model, config, tta)
    score_s = time.perf_counter() - scored_at
    dataset_file = "isbi2012" if config.dataset == "isbi2012" else name
    save_predictions(out / f"predictions-{dataset_file}.npz", probability[:PREDICTION_IMAGES],
                     images[:PREDICTION_IMAGES], compact=True, run=name, tta=tta,
                     what="P(membrane)" if config.dataset == "isbi2012" else CLASSES[config.cell_targets])
    minutes = [s / 60 for s in history["elapsed_seconds"]]
    curve = {} if config.dataset == "isbi2012" else {"held_out_curve": held_out_curve(run_dir, config, model, minutes[-1])}
    write_json_atomic(out / f"history-{name}.json", {**history, "minutes": minutes, **curve})
    metrics_path, provenance_path = out / "metrics.json", out / "provenance.json"
    all_metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    all_metrics[name] = {"tta": tta, "scored_images": images, **scores}
    write_json_atomic(metrics_path, all_metrics)
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    provenance[name] = cpu_script_run(state, config.steps_per_epoch, planned_seconds_per_step=step_seconds,
                                      scoring_seconds=round(score_s, 1),
                                      wall_seconds_this_call=round(time.perf_counter() - started, 1), resumed=resume)
    write_json_atomic(provenance_path, provenance)
    print(f"== {name}: {json.dumps(scores)} after {provenance[name]['training_minutes']} min", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs/cpu-record", help="checkpoints of the runs (resume from here)")
    parser.add_argument("--out", default="book/artifacts/cpu_runs", help="the artifacts")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="only these runs (default: all)")
    parser.add_argument("--no-tta", action="store_true", help="score without test-time augmentation")
    args = parser.parse_args(argv)
    runs, out = pathlib.Path(args.runs), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only or RUNS:
        print(f"== {name}", flush=True)
        record(name, runs, out, tta=not args.no_tta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
