"""How to split touching cells: the seed threshold of ``metrics.cells_from_probability``, chosen inside the training data.

The recorded CTC runs turn P(cell) into cells as the 4-connected components of
P(cell) > 0.5, and on DIC-HeLa most touching cells come out merged (chapter 8).
This study trains the ``cpu`` preset on one sequence with its last block of
frames set aside (the tuning frames, never trained on), scores the tuning frames
with plain components and with a seeded watershed at each seed threshold, and
picks the threshold with the best SEG there. Only then is the other sequence
(held out) scored, once with plain components and once with the chosen
threshold, from the same model.

The artifact (``--out``, default ``book/artifacts/cpu_runs/seed_study.json``)
holds, per dataset: the tuning rows (SEG, merged cells, cells per frame), the
choice, the two held-out rows, and provenance (command, commit, backend,
hardware, training minutes, date). Written atomically after each dataset;
resumable: run the same command again and a dataset's training continues from
its checkpoint in ``--runs`` (a finished one is only scored again).

    nohup python scripts/seed_study.py > runs/seed-study.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

DATASETS = ("DIC-C2DH-HeLa", "PhC-C2DH-U373")
SEQUENCE = "01"  # trained on (but for its tuning frames); the other sequence is held out
FOLDS, TUNING_FOLD = 3, 2  # the last third of the training sequence's annotated frames is the tuning set
SEED_THRESHOLDS = (None, 0.6, 0.7, 0.8, 0.9, 0.95)  # None: plain components of P(cell) > 0.5
PRESET = "cpu"


def study_config(dataset: str, minutes: float, runs: pathlib.Path):
    """The study's run, its epochs planned to fill ``minutes`` here (``budget.planned_here``)."""
    from unet_tutorial.budget import planned_here
    from unet_tutorial.config import TrainConfig

    config = TrainConfig.preset(PRESET, dataset=dataset, sequence=SEQUENCE, validation_folds=FOLDS,
                                validation_fold=TUNING_FOLD, output_dir=str(runs / f"seed-study-{dataset}"))
    return planned_here(config, minutes)[0]  # the cosine schedule ends with the budget


def predict_cells(model, config, data, indices) -> np.ndarray:
    """P(cell) (N, H, W) of the frames ``indices``, whole-image tiles, test-time augmentation."""
    from unet_tutorial.config import TileConfig
    from unet_tutorial.evaluate import predict_stack

    tile = TileConfig.whole_image(data.images[0].shape, config.depth, config.padding).tile_size
    return predict_stack(model, data.images[indices], tta=True, tile_size=tile, progress=False)[..., 1]


def score_row(probability, data, indices, seed_threshold) -> dict:
    from unet_tutorial import metrics
    from unet_tutorial.evaluate import score_touching_cells

    cells = metrics.cells_from_probability(probability, seed_threshold=seed_threshold)
    return {"seed_threshold": seed_threshold,
            **score_touching_cells(cells, data.masks[indices], data.markers[indices])}


def study(dataset: str, minutes: float, runs: pathlib.Path) -> dict:
    from unet_tutorial import datasets
    from unet_tutorial.evaluate import load_model
    from unet_tutorial.provenance import cpu_script_run
    from unet_tutorial.splits import other_sequence, run_split
    from unet_tutorial.train import train

    config = study_config(dataset, minutes, runs)
    run_dir = pathlib.Path(config.output_dir)
    resume = (run_dir / "state.json").is_file()
    train(config, resume=resume, verbose=2)
    state = json.loads((run_dir / "state.json").read_text())
    model = load_model(run_dir / "model.keras")

    trained = datasets.load_ctc(dataset, SEQUENCE)
    trained_ids, tuning_ids, _ = run_split(len(trained.images), FOLDS, TUNING_FOLD)
    frame_numbers = np.asarray(trained.frame_numbers)
    tuning_probability = predict_cells(model, config, trained, tuning_ids)
    tuning = [score_row(tuning_probability, trained, tuning_ids, seeds) for seeds in SEED_THRESHOLDS]
    chosen = max(tuning, key=lambda row: row["seg"])["seed_threshold"]
    for row in tuning:
        print(f"   tuning {dataset} {SEQUENCE}: {row}", flush=True)

    held_out_sequence = other_sequence(SEQUENCE)
    held_out = datasets.load_ctc(dataset, held_out_sequence)
    everything = np.arange(len(held_out.images))
    held_out_probability = predict_cells(model, config, held_out, everything)
    held_out_rows = [score_row(held_out_probability, held_out, everything, seeds) for seeds in dict.fromkeys((None, chosen))]
    return {
        "trained_on": {"sequence": SEQUENCE, "frames": frame_numbers[trained_ids].tolist()},
        "tuning": {"sequence": SEQUENCE, "frames": frame_numbers[tuning_ids].tolist(), "rows": tuning},
        "chosen_seed_threshold": chosen,
        "held_out": {"sequence": held_out_sequence, "frames": len(everything), "rows": held_out_rows},
        "provenance": cpu_script_run(state, config.steps_per_epoch, tta=True),
    }


def main(argv=None) -> int:
    from unet_tutorial.files import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per dataset (2 cores)")
    parser.add_argument("--runs", default="runs/cpu-record", help="checkpoints (resume from here)")
    parser.add_argument("--out", default="book/artifacts/cpu_runs/seed_study.json")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for dataset in args.datasets:
        started = time.perf_counter()
        print(f"== {dataset}", flush=True)
        results[dataset] = study(dataset, args.minutes, pathlib.Path(args.runs))
        write_json_atomic(out, results)
        print(f"== {dataset}: chose {results[dataset]['chosen_seed_threshold']}; held out "
              f"{results[dataset]['held_out']['rows']} ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
