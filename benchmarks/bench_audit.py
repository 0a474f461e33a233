"""How well the label audit finds wrong labels: data with 5% of its labels corrupted on purpose, by kind.

    python benchmarks/bench_audit.py                                   # every corruption, shipped backbone, 3 seeds
    python benchmarks/bench_audit.py --corruptions flip shift --seeds 11 --start scratch
    python benchmarks/bench_audit.py --table --results benchmarks/audit_results.csv
    python benchmarks/bench_audit.py --rescore --workdir W --results W/audit.csv   # a new scoring, the same folds

The errors people make, each on 5% of the rows (``--corrupt``) of 400 synthetic car photos:

- ``flip``: one target (a random one per row) becomes ``1 - x``;
- ``shift``: one target moves by 0.3, up or down (clipped to [0, 1]);
- ``copy``: one target takes another photo's value of it;
- ``swap``: the whole row takes another photo's eight scores;
- ``relabel``: classes, the ``view`` column (8 viewpoints) of a wrong row becomes another view.

A corruption that changes no value by at least ``VISIBLE`` (0.1; a flip of 0.48 is 0.52) is one
nobody could see in the pixels either: it is counted apart (``invisible``), not among the rows to
find. ``perspective audit`` ranks every row; the figure is the precision among the worst rows, as
many as were visibly corrupted (precision at 5%); chance is the corrupted share. Each fold's run
starts ``--start shipped`` (the shipped model, its head kept: it predicts the same eight scores; 160 px,
``-e 5``), ``shipped-backbone`` (its backbone with a new head, as for photos of other targets) or
``scratch`` (random weights, 96 px, ``-e 10``). Every finished run is appended to ``--results``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from starts import SHIPPED, SHIPPED_SIZE, shipped_backbone  # noqa: E402

from perspective.cli import ArgumentParser, positive_int  # noqa: E402

CORRUPTIONS = ("flip", "shift", "copy", "swap", "relabel")
STARTS = {  # each fold run's start; "shipped-backbone" gets its weights file from starts.shipped_backbone
    "shipped": ["--weights", str(SHIPPED), "--image-size", SHIPPED_SIZE, "-e", "5"],
    "shipped-backbone": ["--image-size", SHIPPED_SIZE, "-e", "5"],
    "scratch": ["--weights", "none", "--image-size", "96", "-e", "10"],
}
VISIBLE = 0.1
SHIFT = 0.3


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_audit.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=400, help="synthetic images (default 400)")
    p.add_argument("--corrupt", type=float, default=0.05, help="share of rows corrupted (default 0.05)")
    p.add_argument("--corruptions", nargs="+", choices=CORRUPTIONS, default=list(CORRUPTIONS), help="(default: all)")
    p.add_argument("--start", nargs="+", choices=list(STARTS), default=["shipped"], help="(default shipped)")
    p.add_argument("--seeds", nargs="+", type=int, default=[11, 12, 13], help="data and corruption seeds (default 11 12 13)")
    p.add_argument("--folds", type=positive_int, default=5, help="folds (default 5)")
    p.add_argument("--workdir", default=None, help="keep data and runs here (default: a temporary folder)")
    p.add_argument("--results", default=None, help="CSV of finished runs, appended to (default: <workdir>/audit.csv)")
    p.add_argument("--table", action="store_true", help="run nothing: print --results as a markdown table")
    p.add_argument("--rescore", action="store_true",
                   help="train nothing: score every run in --results again from its saved audit.csv (needs --workdir)")
    return p


def corrupt(labels: pd.DataFrame, kind: str, share: float, seed: int) -> tuple[pd.DataFrame, set[str], int]:
    """(the corrupted labels, the filenames visibly corrupted, how many corruptions were invisible)."""
    rng = np.random.default_rng(seed)
    scores = [c for c in labels.columns if c.startswith("perspective_score_")]
    out = labels.copy()
    rows = rng.choice(len(labels), size=max(1, round(share * len(labels))), replace=False)
    visible, invisible = set(), 0
    for row in rows:
        donor = int((row + rng.integers(1, len(labels))) % len(labels))
        if kind == "relabel":
            views = sorted(set(labels["view"]) - {labels.at[row, "view"]})
            out.at[row, "view"] = views[rng.integers(len(views))]
            visible.add(labels.at[row, "filename"])
            continue
        if kind == "swap":
            out.loc[row, scores] = labels.loc[donor, scores].to_numpy()
            change = float(np.abs(out.loc[row, scores].to_numpy(float) - labels.loc[row, scores].to_numpy(float)).max())
        else:
            target = scores[rng.integers(len(scores))]
            value = float(labels.at[row, target])
            new = {"flip": 1 - value, "shift": float(np.clip(value + rng.choice([-SHIFT, SHIFT]), 0, 1)),
                   "copy": float(labels.at[donor, target])}[kind]
            out.at[row, target] = round(new, 4)
            change = abs(new - value)
        if change >= VISIBLE:
            visible.add(labels.at[row, "filename"])
        else:
            invisible += 1
    return out, visible, invisible


def run_one(work: Path, kind: str, start: str, seed: int, images: int, share: float, folds: int) -> dict:
    from perspective.synth import generate

    data = work / f"data-{seed}"
    if not (data / "labels.csv").is_file():
        generate(data, images, seed, progress=False, workers=None)
    labels = pd.read_csv(data / "labels.csv")
    corrupted, wrong, invisible = corrupt(labels, kind, share, seed)
    columns = ["filename", "view"] if kind == "relabel" else ["filename", *[c for c in labels if c.startswith("perspective_score_")]]
    csv = work / f"{kind}-{seed}.csv"
    corrupted[columns].to_csv(csv, index=False)
    task = ["--label-column", "view"] if kind == "relabel" else []
    out = work / f"audit-{kind}-{start}-{seed}"
    weights = ["--weights", str(shipped_backbone(work))] if start == "shipped-backbone" else []
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-m", "perspective", "audit", "-d", str(csv), "--images", str(data / "images"),
                    *weights, *STARTS[start], *task, "--folds", str(folds), "--logger", "none", "-q",
                    "-c", str(work / "checkpoints"), "-o", str(out)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    seconds = time.perf_counter() - begin
    return {"corruption": kind, "start": start, "seed": seed, **figures(pd.read_csv(out / "audit.csv"), wrong),
            "invisible": invisible, "chance": len(wrong) / len(labels), "seconds": round(seconds, 1)}


def figures(table: pd.DataFrame, wrong: set[str]) -> dict:
    """Precision among the worst ``len(wrong)`` rows of an audit table, the share found in twice as
    many, and the ties among the top scores."""
    k = len(wrong)
    return {"wrong": k, "precision": len(wrong & set(table["filename"].head(k))) / k if k else float("nan"),
            "found_in_2k": len(wrong & set(table["filename"].head(2 * k))) / k if k else float("nan"),
            "ties_at_top": int(table["label_quality"].head(k).duplicated().sum())}


def rescore(work: Path, row: dict, share: float) -> dict:
    """``row`` again from its saved audit.csv: the out-of-fold predictions it holds, scored by this
    code's ``label_quality`` (for a change of the scoring; no fold is trained again)."""
    from perspective.data.tables import LabelledData
    from perspective.trust.audit import audit_table, label_quality

    kind, start, seed = row["corruption"], row["start"], int(row["seed"])
    table = pd.read_csv(work / f"audit-{kind}-{start}-{seed}" / "audit.csv")
    if kind != "relabel":  # the classes' scoring is cleanlab's, unchanged
        names = [c.removeprefix("predicted_") for c in table if c.startswith("predicted_perspective_score_")]
        data = LabelledData(table[["path", *names]].copy(), "regression", names, "audit.csv")
        outputs = table[[f"predicted_{n}" for n in names]].to_numpy(dtype=float)
        table = audit_table(data, outputs, label_quality(data, outputs))
    _, wrong, _ = corrupt(pd.read_csv(work / f"data-{seed}" / "labels.csv"), kind, share, seed)
    return {**row, **figures(table, wrong)}


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| corruption | start | seeds | precision at 5%, mean ± std (min - max) | found in the worst 10% | "
             "invisible (< 0.1) | ties among the top | time s |", "|---|---|---|---|---|---|---|---|"]
    for (kind, start), group in frame.groupby(["corruption", "start"], sort=False):
        p = group["precision"]
        std = f" ± {p.std(ddof=1):.2f}" if len(group) > 1 else ""
        lines.append(f"| {kind} | {start} | {len(group)} | {p.mean():.2f}{std} ({p.min():.2f} - {p.max():.2f}) | "
                     f"{group['found_in_2k'].mean():.2f} | {int(group['invisible'].sum())} | "
                     f"{int(group['ties_at_top'].sum())} | {group['seconds'].mean():.0f} |")
    return "\n".join(lines)


def main() -> int:
    args = get_args_parser().parse_args()
    if args.table:
        print(markdown(pd.read_csv(args.results)))
        return 0
    if args.rescore:
        if not (args.workdir and args.results):
            raise SystemExit("bench_audit.py: --rescore needs the --workdir and --results of the runs")
        runs = pd.read_csv(args.results).to_dict("records")
        frame = pd.DataFrame([rescore(Path(args.workdir), r, args.corrupt) for r in runs])
        frame.to_csv(args.results, index=False)
        print(markdown(frame))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = Path(args.results or work / "audit.csv")
        done = pd.read_csv(results).to_dict("records") if results.is_file() else []
        for seed in args.seeds:
            for start in args.start:
                for kind in args.corruptions:
                    if any((r["corruption"], r["start"], r["seed"]) == (kind, start, seed) for r in done):
                        continue
                    row = run_one(work, kind, start, seed, args.images, args.corrupt, args.folds)
                    print(row, flush=True)
                    done.append(row)
                    pd.DataFrame(done).to_csv(results, index=False)
        frame = pd.DataFrame(done)
        print(markdown(frame[frame["seed"].isin(args.seeds)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
