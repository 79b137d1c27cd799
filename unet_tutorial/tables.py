"""The paper's Tables 1 and 2 beside ours: the published U-Net rows, our rows, and the table formats.

Each row says what it was measured on: the paper's numbers come from the
challenges' hidden test labels; ours come from held-out ISBI training slices or,
for the cell tracking sets, from the annotated frames of the other sequence.
"""

from __future__ import annotations

import csv
import dataclasses
import io

__all__ = ["PublishedRow", "PAPER_TABLE1", "PAPER_TABLE2", "CHALLENGE_LEADERS_TABLE2", "TABLE1_COLUMNS", "TABLE2_COLUMNS", "table1_rows",
           "table2_rows", "format_table"]


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    """One row of the paper's Table 1 or 2, with where it was measured."""

    name: str  # group / method as printed in the paper
    values: dict  # metric column -> value
    measured_on: str  # the data the challenge scored it on


# Ronneberger et al. 2015, Table 1 ("Ranking on the EM segmentation challenge
# (march 6th, 2015), sorted by warping error") and Table 2 (cell tracking
# challenge 2015, "IOU"). Only the U-Net rows are listed: they are the ones
# checked against the paper for this package.
PAPER_TABLE1 = (
    PublishedRow("u-net (paper, Table 1)", {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611},
                 "ISBI-2012 test stack, hidden labels, challenge server"),
)
PAPER_TABLE2 = {
    "PhC-C2DH-U373": PublishedRow("u-net (paper, Table 2)", {"seg": 0.9203}, "challenge test sequences, hidden labels"),
    "DIC-C2DH-HeLa": PublishedRow("u-net (paper, Table 2)", {"seg": 0.7756}, "challenge test sequences, hidden labels"),
}
# The leaders of the Cell Tracking Challenge's segmentation benchmark on the same two datasets (SEG, hidden
# test sequences), beside which the book puts the paper's 2015 values and ours.
CHALLENGE_LEADERS_TABLE2 = {
    "PhC-C2DH-U373": PublishedRow("CALT-US (challenge leader)", {"seg": 0.931}, "challenge test sequences, hidden labels"),
    "DIC-C2DH-HeLa": PublishedRow("CALT-US (challenge leader)", {"seg": 0.887}, "challenge test sequences, hidden labels"),
}
TABLE1_COLUMNS = ("name", "warping_error", "rand_error", "pixel_error", "v_rand", "v_info", "measured_on")
TABLE2_COLUMNS = ("name", "seg", "iou_cell", "measured_on")
_HEADERS = {"name": "Model", "warping_error": "Warping error", "rand_error": "Rand error", "pixel_error": "Pixel error",
            "v_rand": "V_rand", "v_info": "V_info", "seg": "IOU (SEG)", "iou_cell": "pixel IoU (cell)",
            "measured_on": "Measured on"}


def table1_rows(scores, measured_on: str, name: str = "ours") -> list[dict]:
    """The paper's Table 1 rows plus ours (our V scores; the paper has none)."""
    rows = [{"name": row.name, **row.values, "measured_on": row.measured_on} for row in PAPER_TABLE1]
    rows.append({"name": name, "warping_error": scores.warping_error, "rand_error": scores.rand_error,
                 "pixel_error": scores.pixel_error, "v_rand": scores.v_rand, "v_info": scores.v_info,
                 "measured_on": measured_on})
    return rows


def table2_rows(dataset: str, seg: float, iou_cell: float, measured_on: str, name: str = "ours") -> list[dict]:
    row = PAPER_TABLE2[dataset]
    return [{"name": row.name, **row.values, "measured_on": row.measured_on},
            {"name": name, "seg": seg, "iou_cell": iou_cell, "measured_on": measured_on}]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 0.01 else f"{value:.4f}"
    return str(value)


def format_table(rows: list[dict], columns, style: str = "text") -> str:
    """Rows as aligned text, Markdown or CSV ('-' where a row has no value)."""
    headers = [_HEADERS[c] for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if style == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[("" if row.get(c) is None else row.get(c)) for c in columns] for row in rows])
        return buffer.getvalue()
    if style == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines) + "\n"
