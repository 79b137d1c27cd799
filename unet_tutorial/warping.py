"""The warping error of the ISBI-2012 challenge (Jain et al. 2010).

Jain, Bollmann, Richardson, Berger, Helmstaedter, Briggman, Denk, Bowden,
Mendenhall, Abraham, Harris, Kasthuri, Hayworth, Schalek, Tapia, Lichtman,
Seung: "Boundary learning by optimization with topological constraints",
CVPR 2010, Sec. 3. The ground truth is *warped* toward the prediction: a pixel
of the ground truth may change class only where the change does not alter the
topology (a *simple point*: no object or hole is created, deleted, split or
merged). The warping error is the fraction of pixels where the warped truth and
the prediction still disagree; each remaining disagreement is a topological
error (split, merge, object or hole added or removed), which a plain pixel
error would count no differently from a harmless shift of a boundary.

Conventions used here (ISBI labels: 0 = membrane, 1 = cell):

* Cells (foreground) are 4-connected, membranes (background) 8-connected: the
  (4, 8) pair of digital topology, which keeps a one-pixel diagonal membrane a
  valid separator between cells. The challenge's Fiji scripts label cells with
  4-connectivity as well (``RandError``: ``connectedComponents(..., 4)``).
* Outside the image counts as membrane (background).
* No geometric constraint: any simple point may flip (Fiji's ``WarpingError``
  takes an optional mask of where warping is allowed; the challenge's default
  is none). Consequence worth knowing: a prediction with no cell at all scores
  a small warping error, since each true cell shrinks to a single pixel (or a
  thin loop around a hole); read the warping error next to the Rand error.
* Disagreeing pixels are flipped in sweeps over the four (row mod 2, col mod 2)
  sub-lattices. Two pixels of one sub-lattice are never 8-neighbours, so flipping
  all simple ones at once equals flipping them one after another (each test
  reads only the 8 neighbours). Jain et al. flip in order of the prediction's
  confidence; with a binary prediction that order is arbitrary, and the warped
  result (not unique in general) can differ from theirs in rare cases.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage
from skimage.measure import euler_number

from .segments import EIGHT, FOUR

# Neighbour offsets in the order of the bits of a neighbourhood code.
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
# The kinds of topological error, as counted in WarpingResult.
_ERROR_KINDS = ("splits", "merges", "object_additions", "object_deletions", "hole_additions", "hole_deletions")
# What a warping error counts: "splits_and_mergers" (the ISBI-2012 challenge's "minimum splits and
# mergers warping error") or "all" (every remaining mismatch, Jain et al.'s original definition).
COUNTS = ("splits_and_mergers", "all")


@dataclasses.dataclass(frozen=True)
class WarpingResult:
    """Result of :func:`warping_error` (counts summed over the slices of a stack)."""

    warping_error: float  # the error under ``count`` (below), a fraction of all pixels
    n_mismatches: int  # pixels where warped truth and prediction still differ
    split_merge_pixels: int  # those of them that Fiji classifies as part of a split or a merger
    splits: int  # one truth object cut into more pieces by the prediction
    merges: int  # truth objects joined by the prediction (counted per extra join)
    object_additions: int  # prediction objects with no counterpart in the truth
    object_deletions: int  # truth objects missing in the prediction
    hole_additions: int  # enclosed background created by the prediction
    hole_deletions: int  # enclosed background of the truth filled or opened
    count: str = "splits_and_mergers"  # which mismatches the error counts (see COUNTS)
    warped: np.ndarray | None = dataclasses.field(default=None, repr=False)  # warped truth (bool)

    @property
    def topological_errors(self) -> int:
        """Total number of topological errors of all kinds."""
        return (self.splits + self.merges + self.object_additions + self.object_deletions
                + self.hole_additions + self.hole_deletions)


def _ring(code: int) -> np.ndarray:
    """The 3 x 3 neighbourhood that an 8-bit code describes (bit k = neighbour ``_OFFSETS[k]`` set), centre False."""
    ring = np.zeros((3, 3), dtype=bool)
    for bit, (dr, dc) in enumerate(_OFFSETS):
        ring[1 + dr, 1 + dc] = bool(code >> bit & 1)
    return ring


@functools.lru_cache(maxsize=None)
def simple_point_table() -> np.ndarray:
    """Look-up table: is a pixel with neighbourhood code ``c`` simple?

    A pixel is simple for the (4, 8) connectivity pair when exactly one
    4-component of the foreground in its 8-neighbourhood is 4-adjacent to it
    and exactly one 8-component of the background lies in its 8-neighbourhood
    (Bertrand's topological numbers T4(p, X) = T8(p, X̄) = 1). The test does not
    depend on the pixel's own value, so the same table serves both flips.

    Returns:
        (256,) bool array indexed by the 8-bit code (bit k = neighbour
        ``_OFFSETS[k]`` is foreground).
    """
    table = np.zeros(256, dtype=bool)
    for code in range(256):
        ring = _ring(code)
        foreground, _ = ndimage.label(ring, structure=FOUR)
        edge_labels = {foreground[0, 1], foreground[1, 0], foreground[1, 2], foreground[2, 1]} - {0}
        background_ring = ~ring
        background_ring[1, 1] = False
        _, n_background = ndimage.label(background_ring, structure=EIGHT)
        table[code] = len(edge_labels) == 1 and n_background == 1
    return table


@functools.lru_cache(maxsize=None)
def ring_cut_table() -> np.ndarray:
    """Look-up table: do the 8 neighbours with code ``c`` (bit k = neighbour ``_OFFSETS[k]`` is in the cell),
    without the centre pixel, fall into two or more 4-connected pieces?

    Only then can removing the centre cut its cell (:func:`split_merge_pixels`);
    when the pieces meet in the ring, the cell stays whole.
    """
    return np.array([ndimage.label(_ring(code), structure=FOUR)[1] >= 2 for code in range(256)])


def _neighbourhood_codes(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """8-bit neighbourhood codes of the pixels (rows, cols) of the unpadded image."""
    codes = np.zeros(rows.shape, dtype=np.uint8)
    for bit, (dr, dc) in enumerate(_OFFSETS):
        codes |= padded[rows + 1 + dr, cols + 1 + dc].astype(np.uint8) << bit
    return codes


def warp_truth(truth: np.ndarray, prediction: np.ndarray, max_sweeps: int = 100_000) -> np.ndarray:
    """Warp a binary truth toward a binary prediction by flipping simple points.

    Args:
        truth: (H, W) bool, True = cell.
        prediction: (H, W) bool, True = cell.
        max_sweeps: safety bound on the number of sweeps (each sweep flips at
            least one pixel, so the loop ends after at most H*W sweeps anyway).

    Returns:
        (H, W) bool: the warped truth, topologically equivalent to ``truth``,
        differing from ``prediction`` on no simple point.
    """
    table = simple_point_table()
    padded = np.pad(truth.astype(bool), 1, constant_values=False)
    target = np.pad(prediction.astype(bool), 1, constant_values=False)
    mismatch_rows, mismatch_cols = np.nonzero(padded != target)
    mismatch_rows -= 1
    mismatch_cols -= 1
    for _ in range(max_sweeps):
        flipped = 0
        for parity_r in (0, 1):
            for parity_c in (0, 1):
                on_lattice = (mismatch_rows % 2 == parity_r) & (mismatch_cols % 2 == parity_c)
                rows, cols = mismatch_rows[on_lattice], mismatch_cols[on_lattice]
                if rows.size == 0:
                    continue
                simple = table[_neighbourhood_codes(padded, rows, cols)]
                if simple.any():
                    padded[rows[simple] + 1, cols[simple] + 1] = target[rows[simple] + 1, cols[simple] + 1]
                    flipped += int(simple.sum())
        if flipped == 0:
            break
        still = padded[mismatch_rows + 1, mismatch_cols + 1] != target[mismatch_rows + 1, mismatch_cols + 1]
        mismatch_rows, mismatch_cols = mismatch_rows[still], mismatch_cols[still]
    return padded[1:-1, 1:-1].copy()


def _classify_mismatches(warped: np.ndarray, prediction: np.ndarray) -> dict[str, int]:
    """Count the topological errors among the pixels still in disagreement.

    Each connected cluster of disagreeing pixels is flipped on its own in the
    warped truth; the change in the number of cell components (4-connected)
    and background components (8-connected, the outside being one of them)
    tells what kind of error it is (one cluster may be several errors).

    The changes are found without relabelling the whole image: the pieces a
    cluster joins are read from the labels of its neighbours, and the other
    change follows from the Euler number (cells minus holes), which depends
    only on the pixels around the cluster.
    """
    counts = dict.fromkeys(_ERROR_KINDS, 0)
    cell_labels, _ = ndimage.label(warped, structure=FOUR)
    background_labels, _ = ndimage.label(np.pad(~warped, 1, constant_values=True), structure=EIGHT)
    background_labels = background_labels[1:-1, 1:-1]
    added = prediction & ~warped  # prediction has cell where the warped truth has membrane
    removed = warped & ~prediction  # prediction has membrane where the warped truth has cell
    height, width = warped.shape
    for mask, structure, adding in ((added, FOUR, True), (removed, EIGHT, False)):
        clusters, _ = ndimage.label(mask, structure=structure)
        for index, region in enumerate(ndimage.find_objects(clusters), start=1):
            # crop around the cluster, one pixel wider on each side
            r0, r1 = max(region[0].start - 1, 0), min(region[0].stop + 1, height)
            c0, c1 = max(region[1].start - 1, 0), min(region[1].stop + 1, width)
            inside = clusters[r0:r1, c0:c1] == index
            before = warped[r0:r1, c0:c1]
            after = before.copy()
            after[inside] = adding
            d_euler = int(euler_number(after, connectivity=1)) - int(euler_number(before, connectivity=1))
            # neighbours of the cluster: the pieces it joins when it changes class
            ring = ndimage.binary_dilation(inside, structure=structure if adding else EIGHT) & ~inside
            if adding:
                joined = np.unique(cell_labels[r0:r1, c0:c1][ring & before])
                d_cells = 1 - int(np.count_nonzero(joined))
                d_holes = d_cells - d_euler
            else:
                joined = np.unique(background_labels[r0:r1, c0:c1][ring & ~before])
                touches_border = (region[0].start == 0 or region[1].start == 0
                                  or region[0].stop == height or region[1].stop == width)
                n_joined = int(np.count_nonzero(joined))
                if touches_border and 1 not in joined:
                    n_joined += 1  # the outside (label 1 of the padded image) joins as well
                d_holes = 1 - n_joined
                d_cells = d_euler + d_holes
            if adding:
                counts["object_additions"] += max(d_cells, 0)
                counts["merges"] += max(-d_cells, 0)
            else:
                counts["splits"] += max(d_cells, 0)
                counts["object_deletions"] += max(-d_cells, 0)
            counts["hole_additions"] += max(d_holes, 0)
            counts["hole_deletions"] += max(-d_holes, 0)
    return counts


def split_merge_pixels(warped: np.ndarray, prediction: np.ndarray) -> int:
    """How many mismatching pixels belong to a split or a merger, classified as Fiji's challenge code does.

    Fiji's ``trainableSegmentation.metrics.WarpingError``: ``classifyMismatches2d``
    labels every pixel where the warped truth and the prediction differ by the
    4-connected cell components of the warped truth in its 8 neighbours (pixels
    outside the image are not neighbours): one label only, or background and
    one cell with the pixel itself background, make object/hole additions and
    deletions; two or more cells around a background pixel are a MERGE, around
    a cell pixel a SPLIT; background and one cell around a cell pixel is a SPLIT
    only if removing the pixel cuts that cell (its neighbours then lie in two
    or more components), else a hole deletion. ``getMinimumSplitsAndMergersErrorValue``
    sets ``flags = MERGE + SPLIT`` and ``clusterMismatchesByType`` counts pixels,
    so the challenge's error is (split pixels + merger pixels) / all pixels.
    """
    rows, cols = np.nonzero(warped != prediction)
    if rows.size == 0:
        return 0
    cells, _ = ndimage.label(warped, structure=FOUR)
    padded = np.pad(cells, 1, constant_values=-1)  # -1: outside the image, not a neighbour
    neighbours = np.stack([padded[rows + 1 + dr, cols + 1 + dc] for dr, dc in _OFFSETS], axis=1)  # (M, 8)
    ordered = np.sort(neighbours, axis=1)
    distinct = (ordered >= 0) & np.concatenate([np.ones((len(rows), 1), bool), ordered[:, 1:] != ordered[:, :-1]], 1)
    n_labels = distinct.sum(axis=1)  # how many different labels (background 0 included) are around
    is_cell = warped[rows, cols]
    merges = (n_labels >= 3) & ~is_cell
    splits = (n_labels >= 3) & is_cell
    maybe_split = np.nonzero((n_labels == 2) & is_cell)[0]
    # Removing the pixel can cut its cell only where its cell neighbours are apart in the 3 x 3 ring (a table
    # look-up); only those are checked on the whole cell.
    own = padded[rows[maybe_split] + 1, cols[maybe_split] + 1]
    codes = np.zeros(maybe_split.shape, dtype=np.uint8)
    for bit, (dr, dc) in enumerate(_OFFSETS):
        codes |= (padded[rows[maybe_split] + 1 + dr, cols[maybe_split] + 1 + dc] == own).astype(np.uint8) << bit
    apart = maybe_split[ring_cut_table()[codes]]
    boxes = ndimage.find_objects(cells) if apart.size else []  # each cell's bounding box, found once
    cut = sum(_removal_cuts(cells, boxes, int(rows[i]), int(cols[i])) for i in apart)
    return int(merges.sum() + splits.sum() + cut)


def _removal_cuts(cells: np.ndarray, boxes: list, row: int, col: int) -> bool:
    """Does removing cell pixel (row, col), whose cell neighbours are apart in its 3 x 3 ring, cut the cell?

    Relabel the whole cell without the pixel (it holds every path between the
    neighbours): cut when they now lie in two or more 4-components.
    """
    label = cells[row, col]
    box = boxes[label - 1]
    whole = cells[box] == label
    whole[row - box[0].start, col - box[1].start] = False
    pieces, _ = ndimage.label(whole, structure=FOUR)
    around = pieces[max(row - 1 - box[0].start, 0):row + 2 - box[0].start,
                    max(col - 1 - box[1].start, 0):col + 2 - box[1].start]
    return len(set(np.unique(around).tolist()) - {0}) >= 2


def check_count(count: str) -> str:
    if count not in COUNTS:
        raise ValueError(f"count must be one of {COUNTS}, got {count!r}: 'splits_and_mergers' is the ISBI "
                         "challenge's warping error, 'all' counts every remaining mismatch.")
    return count


def binary_warping_error(truth: np.ndarray, prediction: np.ndarray, return_warped: bool = False,
                         count: str = "splits_and_mergers", count_errors: bool = True) -> WarpingResult:
    """Warping error of one 2-D slice (both arguments bool, True = cell); ``count`` as in :data:`COUNTS`.

    ``count_errors=False`` skips counting the topological errors by kind (their fields stay 0):
    a threshold sweep needs only the error itself, and the counting takes most of the time.
    """
    check_count(count)
    warped = warp_truth(truth, prediction)
    n_mismatches = int(np.count_nonzero(warped != prediction))
    counts = dict.fromkeys(_ERROR_KINDS, 0)
    if n_mismatches and count_errors:
        counts = _classify_mismatches(warped, prediction)
    split_merge = split_merge_pixels(warped, prediction) if n_mismatches else 0
    counted = split_merge if count == "splits_and_mergers" else n_mismatches
    return WarpingResult(
        warping_error=counted / truth.size if truth.size else 0.0,
        n_mismatches=n_mismatches,
        split_merge_pixels=split_merge,
        count=count,
        warped=warped if return_warped else None,
        **counts,
    )


def stack_warping_error(truth: np.ndarray, prediction: np.ndarray, return_warped: bool = False,
                        progress: bool = False, count: str = "splits_and_mergers",
                        count_errors: bool = True) -> WarpingResult:
    """Warping error of a (N, H, W) stack (bool, True = cell): each slice warped on its own, counts added."""
    slices = range(truth.shape[0])
    if progress:
        from tqdm.auto import tqdm
        slices = tqdm(slices, desc="warping error", unit="slice")
    results = [binary_warping_error(truth[i], prediction[i], return_warped=return_warped, count=count,
                                    count_errors=count_errors) for i in slices]
    return sum_results(results, truth.size, count)


def sum_results(results: list[WarpingResult], n_pixels: int, count: str = "splits_and_mergers") -> WarpingResult:
    """Combine per-slice results: counts add up, the error is over all pixels."""
    fields = ("n_mismatches", "split_merge_pixels", *_ERROR_KINDS)
    totals = {name: int(sum(getattr(r, name) for r in results)) for name in fields}
    warped = None
    if results and all(r.warped is not None for r in results):
        warped = np.stack([r.warped for r in results])
    counted = totals["split_merge_pixels"] if check_count(count) == "splits_and_mergers" else totals["n_mismatches"]
    return WarpingResult(warping_error=counted / n_pixels if n_pixels else 0.0, count=count, warped=warped, **totals)
