"""A weight soup of a run's best checkpoints against its best one, on held-out data (a benchmark).

    python benchmarks/bench_soup.py -d WORK/data/cars/test WORK/ckpt/resnet18/cars-e15-s*
    python benchmarks/bench_soup.py -d WORK/data/digits/test WORK/ckpt/resnet18/digits-e15-s*
    python benchmarks/bench_soup.py --across -d WORK/data/fashion/test WORK/ckpt/resnet18/fashion-e15-s*

A uniform "soup" averages the weights of the three checkpoints that ``train`` keeps (its best three
by the monitored validation metric); the runs to read are any ``train`` run folders, such as the ones
``bench_recipe.py --workdir WORK`` leaves. Both models go through ``perspective evaluate`` (fp32) on
the same data; the line per run gives the test score of each (mean R² for scores, accuracy for
classes). It measures the "average the best checkpoints" candidate without adding it to ``train``.

``--across`` averages over the runs instead (fine-tunes of one start with different seeds): each run's
picked checkpoint alone, the ensemble of all of them (their predicted probabilities or scores
averaged) and the uniform soup of their weights. ``--across --reports`` ensembles the runs' own test
predictions (``test_report/predictions.csv``, written when ``train`` had a test set) instead of evaluating
again: exactly each run's pick at the run's precision, in seconds, for runs of different starts too.

    python benchmarks/bench_soup.py --across --reports WORK/ckpt/resnet18/fashion-e15-s0-*
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_recipe import headline_score  # noqa: E402

from perspective.cli import ArgumentParser, existing_path  # noqa: E402
from perspective.evaluation.metrics import classification_metrics, regression_metrics  # noqa: E402


def held_out_score(checkpoint: Path, data: Path, out: Path) -> float:
    """``perspective evaluate``'s headline figure for ``checkpoint`` on ``data`` (its rows: ``out``/predictions.csv)."""
    subprocess.run([sys.executable, "-m", "perspective", "evaluate", "-c", str(checkpoint), "-d", str(data),
                    "-o", str(out), "-q", "--precision", "32"], check=True, capture_output=True, cwd=ROOT)
    metrics = json.loads((out / "metrics.json").read_text())
    return headline_score(metrics)


def best_first(run: Path) -> list[Path]:
    """The run's kept checkpoints, best first: the one train picked (``last.ckpt`` names it, ties
    included), then the others by the metric in their names (loss: lower is better; else higher)."""
    kept = list(run.glob("epoch=*.ckpt"))
    if not kept:
        raise SystemExit(f"bench_soup.py: {run}: no epoch=*.ckpt checkpoints")
    lower_is_better = "loss" in kept[0].stem
    kept.sort(key=lambda p: float(p.stem.rsplit("=", 1)[-1]), reverse=not lower_is_better)
    last = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False) if (run / "last.ckpt").is_file() else {}
    picked = [Path(state["best_model_path"]).name for state in last.get("callbacks", {}).values()
              if isinstance(state, dict) and state.get("best_model_path")]
    return sorted(kept, key=lambda p: p.name not in picked)  # stable: the picked one first, the rest in order


def uniform_soup(checkpoints: list[Path], path: Path) -> None:
    """The first checkpoint with its floating-point weights replaced by the mean over all of them."""
    loaded = [torch.load(c, map_location="cpu", weights_only=False) for c in checkpoints]
    soup = dict(loaded[0])
    soup["state_dict"] = {name: sum(c["state_dict"][name] for c in loaded) / len(loaded) if value.is_floating_point()
                          else value for name, value in loaded[0]["state_dict"].items()}
    torch.save(soup, path)


def ensemble_score(predictions: list[Path]) -> float:
    """The headline score of several models' ``evaluate`` rows averaged, scored as ``evaluate`` scores one
    model's: class probabilities (then the likeliest class) or scores (then the mean R² over the targets)."""
    import pandas as pd

    frames = [pd.read_csv(p).set_index("path").sort_index() for p in predictions]
    first = frames[0]
    if "true_label" in first:
        columns = [c for c in first if c.startswith("prob_")]
        mean = sum(f[columns] for f in frames) / len(frames)
        classes = [c.removeprefix("prob_") for c in columns]
        likeliest = mean.idxmax(axis=1).str.removeprefix("prob_")
        return headline_score(classification_metrics(likeliest.tolist(), first["true_label"].tolist(), classes))
    targets = [c.removeprefix("true_") for c in first if c.startswith("true_")]
    mean = sum(f[targets] for f in frames) / len(frames)
    truth = first[[f"true_{t}" for t in targets]]
    return headline_score(regression_metrics(mean.to_numpy(), truth.to_numpy(), targets))


def across_runs(runs: list[Path], data: Path) -> None:
    """Each run's picked checkpoint, their ensemble and their uniform soup, on ``data``."""
    picked = [best_first(run)[0] for run in runs]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        alone = []
        for i, checkpoint in enumerate(picked):
            alone.append(held_out_score(checkpoint, data, tmp / str(i)))
            print(f"{runs[i].name}: {checkpoint.stem} {alone[-1]:.4f}", flush=True)
        ensemble = ensemble_score([tmp / str(i) / "predictions.csv" for i in range(len(picked))])
        uniform_soup(picked, tmp / "soup.ckpt")
        soup = held_out_score(tmp / "soup.ckpt", data, tmp / "soup")
    mean = sum(alone) / len(alone)
    print(f"{len(runs)} runs: alone {mean:.4f} on average, ensemble {ensemble:.4f} ({ensemble - mean:+.4f}), "
          f"soup {soup:.4f} ({soup - mean:+.4f})")


def across_reports(runs: list[Path]) -> None:
    """Each run's own test score and the ensemble of the runs' test predictions."""
    reports = [run / "test_report" / "predictions.csv" for run in runs]
    missing = [str(r) for r in reports if not r.is_file()]
    if missing:
        raise SystemExit(f"bench_soup.py: no test predictions (train ran without a test set?): {', '.join(missing)}")
    alone = [ensemble_score([r]) for r in reports]
    for run, score in zip(runs, alone):
        print(f"{run.name}: {score:.4f}")
    ensemble, mean = ensemble_score(reports), sum(alone) / len(alone)
    print(f"{len(runs)} runs: alone {mean:.4f} on average, ensemble {ensemble:.4f} ({ensemble - mean:+.4f})")


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="bench_soup.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-d", "--data", type=existing_path, help="held-out labelled data to score on (not with --reports)")
    p.add_argument("runs", nargs="+", type=existing_path, help="train run folders (their epoch=*.ckpt files)")
    p.add_argument("--across", action="store_true",
                   help="average over the runs (fine-tunes of one start): their ensemble and their soup")
    p.add_argument("--reports", action="store_true",
                   help="with --across: ensemble the runs' own test predictions (test_report/predictions.csv)")
    args = p.parse_args(argv)
    if args.reports and not args.across:
        p.error("--reports goes with --across")
    if not args.reports and args.data is None:
        p.error("-d/--data is required (held-out labelled data), unless --across --reports")
    if args.reports:
        across_reports([Path(r) for r in args.runs])
        return
    if args.across:
        across_runs([Path(r) for r in args.runs], Path(args.data))
        return
    gains = []
    for run in map(Path, args.runs):
        kept = best_first(run)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            uniform_soup(kept, tmp / "soup.ckpt")
            best, soup = held_out_score(kept[0], args.data, tmp / "best"), held_out_score(tmp / "soup.ckpt", args.data, tmp / "soup")
        gains.append(soup - best)
        print(f"{run.name}: best {kept[0].stem} {best:.4f}, soup of {len(kept)} {soup:.4f} ({soup - best:+.4f})",
              flush=True)
    print(f"soup - best over {len(gains)} runs: mean {sum(gains) / len(gains):+.4f}, "
          f"min {min(gains):+.4f}, max {max(gains):+.4f}")


if __name__ == "__main__":
    main()
