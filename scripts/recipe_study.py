"""A study of training recipes on 2 CPU cores: which settings give the best U-Net per CPU minute.

Each row trains ISBI-2012 for the same wall-clock budget (``--minutes``) from
one base recipe with one setting changed, and is scored on the TUNING block
(slices 6-11, ``TrainConfig(tuning_block=True)``): the held-out slices 0-5 are
neither trained on nor looked at here, so the settings chosen from this table
are not tuned on the held-out score that the book reports.

The number of steps of each row is planned from its own measured step time, so
that its cosine schedule ends when its budget does; rows that are cheaper per
step get more steps. Finished rows are kept in ``--out`` (one JSON file,
written atomically); run the script again to resume: finished rows are skipped
and an interrupted row continues from its last checkpoint.

    nohup python scripts/recipe_study.py --out runs/study > runs/study.log 2>&1 &

Whether the short rows rank the recipes as a long run would: ``--check-top-of``
trains the two best rows of a finished study (``book.ranked_recipes``) again at
full length, e.g. ``--check-top-of runs/study/study.json --minutes 90 --out
runs/study-long``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

STEPS_PER_EPOCH = 50

# The base recipe and the one change of each row.
BASE = dict(
    dataset="isbi2012", validation_folds=5, validation_fold=0, tuning_block=True,
    depth=4, base_filters=16, padding="same", batch_norm=True, dropout=0.0,
    tile_size=128, batch_size=8, optimizer="adam", learning_rate=1e-3, lr_schedule="cosine",
    w0=10.0, sigma=5.0, elastic=True, steps_per_epoch=STEPS_PER_EPOCH,
)
ROWS = {
    "base": {},
    "valid padding": dict(padding="valid", tile_size=220),  # 220 -> 132 output, about the same pixels per step
    "no batch norm": dict(batch_norm=False),
    "SGD momentum 0.99 (paper)": dict(optimizer="sgd", learning_rate=0.01, momentum=0.99),
    "constant learning rate": dict(lr_schedule="constant"),
    "AdamW": dict(optimizer="adamw"),
    "one-cycle, peak 3e-3": dict(lr_schedule="one-cycle", learning_rate=3e-3),
    "width 8": dict(base_filters=8),
    "width 32": dict(base_filters=32),
    "depth 5": dict(depth=5),
    "tile 256, batch 2": dict(tile_size=256, batch_size=2),
    "no border term (w0 0)": dict(w0=0.0),
    "narrow border term (sigma 3)": dict(sigma=3.0),
    "no elastic deformation": dict(elastic=False),
}
TTA_ROWS = ("base",)  # also scored with the 8 flips and rotations (no extra training)


def score_tuning_block(run_dir: pathlib.Path, tta: bool) -> dict:
    """ISBI scores (the challenge's definitions) of the run's final model on the slices it scored every epoch."""
    from unet_tutorial import datasets
    from unet_tutorial.evaluate import load_model, score_isbi_images

    state = json.loads((run_dir / "state.json").read_text())
    slices = state["scored_each_epoch"]
    data = datasets.load_isbi2012()
    model = load_model(run_dir / "model.keras")
    return score_isbi_images(model, data.images[slices], data.labels[slices], depth=state["config"]["depth"],
                             padding=state["config"]["padding"], tta=tta)[0]


def row_folder(name: str) -> str:
    """The run folder of a row: its name up to any parenthesis, with dashes for spaces."""
    return name.split(" (")[0].replace(" ", "-").replace(",", "")


def run_row(name: str, overrides: dict, minutes: float, out: pathlib.Path, step_s=None) -> dict:
    from unet_tutorial.budget import planned_here
    from unet_tutorial.config import TrainConfig
    from unet_tutorial.provenance import source
    from unet_tutorial.train import train

    run_dir = out / row_folder(name)
    # The epochs that fill the budget at a step timed here (or at ``step_s``, measured by an earlier attempt:
    # a probe on a busy machine can be far off); the time budget stops a row that runs over.
    config, step_s = planned_here(TrainConfig(**{**BASE, **overrides}, output_dir=str(run_dir)), minutes, step_s)
    resume = (run_dir / "state.json").is_file()
    history = train(config, resume=resume, verbose=2)
    row = {
        "row": name,
        "changes": overrides,
        "commit": source()["commit"],  # rows added to a study later may come from a later commit than its provenance
        "seconds_per_step": round(step_s, 4) if step_s else None,  # None: a row resumed from before plans were kept
        "steps": int(history["epoch"][-1]) * STEPS_PER_EPOCH,
        "cpu_minutes": round(history["elapsed_seconds"][-1] / 60, 2),
        "tuning_pixel_error_per_epoch": history["val_pixel_error"],
        "minutes_per_epoch": [round(s / 60, 3) for s in history["elapsed_seconds"]],
        "tuning": score_tuning_block(run_dir, tta=False),
    }
    if name in TTA_ROWS:
        row["tuning_tta"] = score_tuning_block(run_dir, tta=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/study", help="folder of the runs and of study.json")
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget of each row")
    parser.add_argument("--rows", nargs="*", default=None, help="only these rows (default: all)")
    parser.add_argument("--redo", nargs="*", default=(), help="run these finished rows again, planned from the "
                        "epoch time they measured (for rows that a busy machine planned too short)")
    parser.add_argument("--check-top-of", default=None, help="a finished study.json: train its two best rows "
                        "(book.ranked_recipes) with this run's --minutes")
    args = parser.parse_args(argv)
    rows = args.rows
    if args.check_top_of:
        from unet_tutorial.book import ranked_recipes

        short = json.loads(pathlib.Path(args.check_top_of).read_text())
        rows = [row["row"] for row in ranked_recipes(short)[:2]]

    from unet_tutorial.files import write_json_atomic
    from unet_tutorial.provenance import cpu_script_run

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / "study.json"
    table = json.loads(table_path.read_text()) if table_path.is_file() else {
        "provenance": cpu_script_run(
            minutes_per_row=args.minutes,
            scored_on="ISBI-2012 tuning block, slices 6-11 (held-out slices 0-5 not used)",
            base=BASE,
            **({"checks_top_two_of": args.check_top_of} if args.check_top_of else {}),
        ),
        "rows": [],
    }
    measured = {}
    for row in [row for row in table["rows"] if row["row"] in args.redo]:
        measured[row["row"]] = row["cpu_minutes"] * 60 / row["steps"]
        table["rows"].remove(row)
        shutil.rmtree(out / row_folder(row["row"]), ignore_errors=True)
    done = {row["row"] for row in table["rows"]}
    for name, overrides in ROWS.items():
        if name in done or (rows and name not in rows):
            continue
        print(f"== {name}: {overrides}", flush=True)
        row = run_row(name, overrides, args.minutes, out, measured.get(name))
        table["rows"].append(row)
        write_json_atomic(table_path, table)
        tuning = row["tuning"]
        print(f"== {name}: pixel {tuning['pixel_error']:.4f} rand {tuning['rand_error']:.4f} "
              f"warping {tuning['warping_error']:.6f} in {row['cpu_minutes']} min, {row['steps']} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
