"""Which images a run trains on and which it is scored on: the one home of the held-out split.

ISBI-2012's test labels are not public, so its scores come from training slices
that the run never trained on: the 30 slices are cut into ``folds`` contiguous
blocks and block ``fold`` is held out (:func:`held_out_split`). ``train`` uses it
to hold the block out, ``evaluate`` and ``predict`` to pick the same block, and
:func:`trained_indices` to warn when a score would include trained images. The
cell tracking sets are scored across sequences: trained on one, scored on the
other (:func:`other_sequence`). A user's own folders are split by file
(:func:`held_out_files`): the same contiguous blocks, over the files sorted by name.
"""

from __future__ import annotations

import numpy as np

__all__ = ["held_out_split", "run_split", "select_images", "trained_indices", "other_sequence", "held_out_files"]


def held_out_split(n: int, folds: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) for fold ``fold`` of ``folds`` contiguous blocks.

    Contiguous blocks, not interleaved slices: neighbouring EM slices look
    alike, so holding out a block scores the network on unseen tissue. With
    ``folds == 1`` everything is trained on and nothing is held out.
    """
    indices = np.arange(n)
    if folds == 1:
        return indices, indices[:0]
    if folds > n:
        raise ValueError(f"validation_folds={folds} is more than the {n} images; use at most {n}.")
    if not 0 <= fold < folds:
        raise ValueError(f"the held-out fold must be in 0..{folds - 1} for {folds} folds, got {fold}.")
    held_out = np.array_split(indices, folds)[fold]
    return np.setdiff1d(indices, held_out), held_out


def run_split(n: int, folds: int, fold: int, tuning_block: bool = False):
    """(trained, scored every epoch, held out) indices of a training run: the one rule ``train`` follows.

    Without a tuning block the held-out block is what a run scores every epoch
    (:func:`held_out_split`). With ``tuning_block=True`` the next block
    (``fold + 1``, wrapping round) is set aside as well: the run scores that
    block every epoch, so settings are chosen on images inside the training
    data, and the held-out block is neither trained on nor looked at until a
    final score.
    """
    train_ids, held_out = held_out_split(n, folds, fold)
    if not tuning_block:
        return train_ids, held_out, held_out
    if folds < 3:
        raise ValueError(f"a tuning block needs validation_folds >= 3 (train, tune, hold out), got {folds}.")
    tuning = held_out_split(n, folds, (fold + 1) % folds)[1]
    return np.setdiff1d(train_ids, tuning), tuning, held_out


def select_images(n: int, slices: str | None = None, fold: int | None = None, folds: int = 5):
    """(indices, description) of the images to score or predict.

    ``slices``: comma-separated indices ("0,1,2"); ``fold``: the held-out block
    ``fold`` of ``folds`` (:func:`held_out_split`); neither: all ``n``.
    """
    if slices is not None and fold is not None:
        raise ValueError("give either --slices or --fold, not both.")
    if slices is not None:
        try:
            indices = np.array(sorted({int(s) for s in slices.split(",") if s.strip()}), dtype=int)
        except ValueError:
            raise ValueError(f"--slices must be comma-separated integers like 0,1,2; got {slices!r}.") from None
        if indices.size == 0 or indices.min() < 0 or indices.max() >= n:
            raise ValueError(f"--slices must name indices in 0..{n - 1}; got {slices!r}.")
        return indices, f"slices {','.join(map(str, indices))}"
    if fold is not None:
        if not 1 <= folds <= n or not 0 <= fold < folds:
            raise ValueError(f"--fold must be in 0..{folds - 1} with --folds between 1 and {n}; got fold {fold} of {folds}.")
        indices = held_out_split(n, folds, fold)[1] if folds > 1 else np.arange(n)
        return indices, f"slices {indices[0]}-{indices[-1]} (fold {fold} of {folds})"
    return np.arange(n), f"all {n} images"


def trained_indices(config: dict | None, dataset: str, sequence: str, n: int) -> set[int]:
    """Indices of ``dataset`` (and ``sequence``) that the run whose saved config is ``config`` trained on."""
    if not config or config.get("dataset") != dataset:
        return set()
    if dataset != "isbi2012" and str(config.get("sequence")) not in (sequence, "both"):
        return set()
    folds, fold = int(config.get("validation_folds", 1)), int(config.get("validation_fold", 0))
    return set(run_split(n, folds, fold, bool(config.get("tuning_block", False)))[0].tolist())


def other_sequence(sequence: str) -> str:
    """The cell tracking sequence a model trained on ``sequence`` is scored on ("01" <-> "02")."""
    if sequence not in ("01", "02"):
        raise ValueError(f"sequence must be '01' or '02', got {sequence!r}.")
    return "02" if sequence == "01" else "01"


def held_out_files(names, folds: int, fold: int, tuning_block: bool = False) -> tuple[list[str], list[str]]:
    """(trained names, held-out names) of a user's files: :func:`held_out_split` over the names sorted.

    Files named in order (frame_001, frame_002, ...) are held out as a block of
    neighbours, like the EM slices, so the score is on images unlike those trained on.
    """
    names = sorted(names)
    train_ids, _, held_out_ids = run_split(len(names), folds, fold, tuning_block)
    return [names[i] for i in train_ids], [names[i] for i in held_out_ids]
