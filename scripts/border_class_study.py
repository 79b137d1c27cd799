"""How to teach touching cells: the paper's background gap against a third "cell border" class.

The paper keeps touching cells apart with a gap of background between them in
the labels, weighted by the weight map's border term (Fig. 3). A common
alternative gives every cell's outline a class of its own
(``weights.border_class_labels``) and grows the interiors back over it
(``metrics.cells_from_classes``). This study trains the ``cpu`` preset both
ways for the same number of steps on one sequence, with its last block of
frames set aside (the tuning frames, never trained on), and chooses the way
with the better SEG on the tuning frames. Only then is the other sequence (held
out) scored, once for each way, so that the table shows both. It does this for
each training sequence: the recorded run that trains on a sequence uses the
way chosen inside that sequence, never one chosen on the frames it is scored on.

The artifact (``--out``, default ``book/artifacts/cpu_runs/border_class_study.json``)
holds, per dataset and training sequence: one row per way (tuning and held-out
SEG, merged cells, cells per frame, provenance with training steps and minutes,
command, commit, backend, hardware, date) and the choice. Written atomically after each row;
resumable: run the same command again and a row's training continues from its
checkpoint in ``--runs`` (a finished one is only scored again).

    nohup python scripts/border_class_study.py > runs/border-class-study.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

DATASETS = ("DIC-C2DH-HeLa", "PhC-C2DH-U373")
CELL_TARGETS = ("gap", "border-class")  # = config.CELL_TARGETS; the first is the paper's
FOLDS, TUNING_FOLD = 3, 2  # the last third of the training sequence's annotated frames is the tuning set
PRESET = "cpu"


def study_config(dataset: str, sequence: str, targets: str, steps: int, runs: pathlib.Path):
    """The cpu preset for ``steps`` steps (both ways train the same steps; the cosine schedule ends with them)."""
    from unet_tutorial.config import TrainConfig

    epochs = max(1, round(steps / TrainConfig.preset(PRESET).steps_per_epoch))
    return TrainConfig.preset(PRESET, dataset=dataset, sequence=sequence, validation_folds=FOLDS,
                              validation_fold=TUNING_FOLD, epochs=epochs, cell_targets=targets,
                              output_dir=str(runs / f"border-class-study-{dataset}-{sequence}-{targets}"))


def cells_of(model, config, data, indices) -> np.ndarray:
    """Numbered cells of the frames ``indices``: whole-image tiles, test-time augmentation."""
    from unet_tutorial import metrics
    from unet_tutorial.config import TileConfig
    from unet_tutorial.evaluate import predict_stack

    tile = TileConfig.whole_image(data.images[0].shape, config.depth, config.padding).tile_size
    return metrics.cells_from_prediction(predict_stack(model, data.images[indices], tta=True, tile_size=tile,
                                                      progress=False))


def study_row(dataset: str, sequence: str, targets: str, steps: int, runs: pathlib.Path) -> dict:
    """Train one way on ``sequence`` (but for its tuning frames); score the tuning frames and the other sequence."""
    from unet_tutorial import datasets
    from unet_tutorial.evaluate import load_model, score_touching_cells
    from unet_tutorial.provenance import cpu_script_run
    from unet_tutorial.splits import other_sequence, run_split
    from unet_tutorial.train import train

    config = study_config(dataset, sequence, targets, steps, runs)
    run_dir = pathlib.Path(config.output_dir)
    train(config, resume=(run_dir / "state.json").is_file(), verbose=2)
    state = json.loads((run_dir / "state.json").read_text())
    model = load_model(run_dir / "model.keras")

    trained = datasets.load_ctc(dataset, sequence)
    trained_ids, tuning_ids, _ = run_split(len(trained.images), FOLDS, TUNING_FOLD)
    tuning = score_touching_cells(cells_of(model, config, trained, tuning_ids), trained.masks[tuning_ids],
                                  trained.markers[tuning_ids])
    held_out = datasets.load_ctc(dataset, other_sequence(sequence))
    everything = np.arange(len(held_out.images))
    scored = score_touching_cells(cells_of(model, config, held_out, everything), held_out.masks, held_out.markers)
    frame_numbers = np.asarray(trained.frame_numbers)
    return {"cell_targets": targets, "classes": 3 if targets == "border-class" else 2,
            "trained_frames": frame_numbers[trained_ids].tolist(), "tuning_frames": frame_numbers[tuning_ids].tolist(),
            "tuning": tuning, "held_out": {"sequence": other_sequence(sequence), "frames": len(everything), **scored},
            "provenance": cpu_script_run(state, config.steps_per_epoch, tta=True)}


def main(argv=None) -> int:
    from unet_tutorial.files import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", choices=DATASETS, default=["DIC-C2DH-HeLa"])
    parser.add_argument("--sequences", nargs="*", choices=("01", "02"), default=["01", "02"],
                        help="training sequences (each is tuned inside itself; the other is held out)")
    parser.add_argument("--steps", type=int, default=1500,
                        help="training steps per row (1,500: as long as the recorded HeLa run on sequence 01)")
    parser.add_argument("--runs", default="runs/cpu-record", help="checkpoints (resume from here)")
    parser.add_argument("--out", default="book/artifacts/cpu_runs/border_class_study.json")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for dataset in args.datasets:
        for sequence in args.sequences:
            done = results.get(dataset, {}).get(sequence, {}).get("rows", [])
            rows = {row["cell_targets"]: row for row in done}
            for targets in CELL_TARGETS:
                started = time.perf_counter()
                print(f"== {dataset} {sequence}, {targets}", flush=True)
                rows[targets] = study_row(dataset, sequence, targets, args.steps, pathlib.Path(args.runs))
                best = max(rows.values(), key=lambda row: row["tuning"]["seg"])["cell_targets"]
                chosen = best if len(rows) == len(CELL_TARGETS) else None  # a choice needs both rows
                results.setdefault(dataset, {})[sequence] = {
                    "rows": [rows[key] for key in CELL_TARGETS if key in rows], "chosen": chosen}
                write_json_atomic(out, results)
                print(f"== {dataset} {sequence}, {targets}: tuning {rows[targets]['tuning']}; held out "
                      f"{rows[targets]['held_out']} ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
