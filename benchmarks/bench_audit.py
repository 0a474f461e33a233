"""How well the label audit finds wrong labels: data with 5% of its labels corrupted on purpose, by kind.

    python benchmarks/bench_audit.py                                   # every corruption, from the shipped model, 3 seeds
    python benchmarks/bench_audit.py --corruptions flip shift swap relabel --seeds 11 12 13 --start shipped shipped-backbone
    python benchmarks/bench_audit.py --rescore --workdir W             # a new scoring of the folds kept in W

It needs nothing but this repository: the photos are made by the built-in generator
(``perspective.synth``, the seed's ``--images`` photos), the starts are the shipped model
(``trained_models/``). The errors people make, each on 5% of the rows (``--corrupt``):

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
``scratch`` (random weights, 96 px, ``-e 10``).

Each finished audit is appended at once as one row of ``benchmarks/results/audit.jsonl``
(``--results FILE`` elsewhere); ``--resume`` skips the audits this machine already has there, and
``--rescore`` records the audits kept in ``--workdir`` again, scored by this code without training
(give it the ``--images``, ``--corrupt`` and ``--folds`` they ran with).
A row's ``case``: ``corruption``, ``start``, ``images``, ``corrupt`` (the share), ``folds``; its
``seed`` makes the photos and the corruption. Its ``figures``: ``wrong_rows`` (the visibly corrupted
rows, k), ``precision_at_k`` (of them, the share among the k worst), ``found_in_2k`` (the share among
the 2k worst), ``ties_at_top`` (equal scores among the k worst), ``invisible_rows``, ``chance``
(k over the rows), ``seconds`` (the audit's wall time; not on a rescored row). ``precision``: the
fold runs' (the machine's default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from benchmarks.starts import SHIPPED, SHIPPED_SIZE, shipped_backbone  # noqa: E402
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
    p.add_argument("--results", default=None,
                   help="JSON Lines file the rows are appended to (default benchmarks/results/audit.jsonl)")
    p.add_argument("--resume", action="store_true", help="skip the audits this machine already has in the results file")
    p.add_argument("--rescore", action="store_true",
                   help="train nothing: record the audits kept in --workdir again, scored by this code")
    return p


def case_of(kind: str, start: str, images: int, share: float, folds: int) -> dict:
    """The settings that tell one audit of this benchmark from another (the row's ``case``)."""
    return {"corruption": kind, "start": start, "images": images, "corrupt": share, "folds": folds}


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
    seconds = store.timed(begin)
    return {**figures(pd.read_csv(out / "audit.csv"), wrong, invisible, len(labels)), "seconds": seconds}


def figures(table: pd.DataFrame, wrong: set[str], invisible: int, rows: int) -> dict:
    """Precision among the worst ``len(wrong)`` rows of an audit table, the share found in twice as
    many, the ties among the top scores, and the counts they rest on."""
    k = len(wrong)
    return {"wrong_rows": k, "precision_at_k": len(wrong & set(table["filename"].head(k))) / k if k else float("nan"),
            "found_in_2k": len(wrong & set(table["filename"].head(2 * k))) / k if k else float("nan"),
            "ties_at_top": int(table["label_quality"].head(k).duplicated().sum()), "invisible_rows": invisible,
            "chance": k / rows}


def kept_audits(work: Path) -> list[tuple[str, str, int]]:
    """(corruption, start, seed) of every audit kept in ``work`` (its ``audit-KIND-START-SEED`` folders)."""
    found = []
    for folder in sorted(work.glob("audit-*/audit.csv")):
        _, kind, *start, seed = folder.parent.name.split("-")
        found.append((kind, "-".join(start), int(seed)))
    return found


def rescore(work: Path, kind: str, start: str, seed: int, share: float) -> dict:
    """An audit's figures again from its saved audit.csv: the out-of-fold predictions it holds, scored by
    this code's ``label_quality`` (for a change of the scoring; no fold is trained again)."""
    from perspective.data.tables import LabelledData
    from perspective.trust.audit import audit_table, label_quality

    table = pd.read_csv(work / f"audit-{kind}-{start}-{seed}" / "audit.csv")
    if kind != "relabel":  # the classes' scoring is cleanlab's, unchanged
        names = [c.removeprefix("predicted_") for c in table if c.startswith("predicted_perspective_score_")]
        data = LabelledData(table[["path", *names]].copy(), "regression", names, "audit.csv")
        outputs = table[[f"predicted_{n}" for n in names]].to_numpy(dtype=float)
        table = audit_table(data, outputs, label_quality(data, outputs))
    labels = pd.read_csv(work / f"data-{seed}" / "labels.csv")
    _, wrong, invisible = corrupt(labels, kind, share, seed)
    return figures(table, wrong, invisible, len(labels))


def markdown(rows: list[dict]) -> str:
    """Per corruption and start: mean ± std (min - max) of the precision at k over seeds, and the rest."""
    frame = pd.DataFrame([{**r["case"], **r["figures"]} for r in rows])
    if "seconds" not in frame:
        frame["seconds"] = float("nan")
    lines = ["| corruption | start | seeds | precision at 5%, mean ± std (min - max) | found in the worst 10% | "
             "invisible (< 0.1) | ties among the top | time s |", "|---|---|---|---|---|---|---|---|"]
    for (kind, start), group in frame.groupby(["corruption", "start"], sort=False):
        p = group["precision_at_k"]
        std = f" ± {p.std(ddof=1):.2f}" if len(group) > 1 else ""
        lines.append(f"| {kind} | {start} | {len(group)} | {p.mean():.2f}{std} ({p.min():.2f} - {p.max():.2f}) | "
                     f"{group['found_in_2k'].mean():.2f} | {int(group['invisible_rows'].sum())} | "
                     f"{int(group['ties_at_top'].sum())} | {group['seconds'].mean():.0f} |")
    return "\n".join(lines)


def fold_precision() -> str:
    """The precision the fold runs train in: this machine's default (the audit is given no --precision)."""
    from perspective.hardware import default_precision

    return default_precision("auto")


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    if args.rescore and not args.workdir:
        parser.error("--rescore needs the --workdir the audits were kept in")
    results = Path(args.results) if args.results else store.results_file("audit")
    precision = fold_precision()
    if args.rescore:
        kept = kept_audits(Path(args.workdir))
        if not kept:
            parser.error(f"--rescore: no audit-KIND-START-SEED/audit.csv in {args.workdir}")
        return rescore_kept(Path(args.workdir), kept, args, results, precision)
    done = {(json.dumps(r["case"], sort_keys=True), r["seed"], r["precision"]): r
            for r in store.measured_here("audit", results)} if args.resume else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for start in args.start:
                for kind in args.corruptions:
                    case = case_of(kind, start, args.images, args.corrupt, args.folds)
                    key = (json.dumps(case, sort_keys=True), seed, precision)
                    if key in done:
                        rows.append(done[key])
                        continue
                    measured = run_one(work, kind, start, seed, args.images, args.corrupt, args.folds)
                    rows.append(store.record("audit", case, measured, seed=seed, precision=precision, path=results))
                    print(json.dumps({"case": case, "seed": seed, "figures": measured}), flush=True)
    if rows:
        print(markdown(rows))
    return 0


def rescore_kept(work: Path, kept: list[tuple[str, str, int]], args: argparse.Namespace, results: Path,
                 precision: str) -> int:
    """Record the ``kept`` audits of ``work`` again, scored by this code; print the table."""
    rows = []
    for kind, start, seed in kept:
        case = case_of(kind, start, args.images, args.corrupt, args.folds)
        rows.append(store.record("audit", case, rescore(work, kind, start, seed, args.corrupt), seed=seed,
                                 precision=precision, path=results))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
