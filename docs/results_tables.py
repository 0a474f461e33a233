"""The measured tables of README.md and docs/, generated from the results store (benchmarks/results/).

    python docs/results_tables.py            # say which pages differ from the store (exit 1 if any)
    python docs/results_tables.py --write    # regenerate them

A page marks each generated table with a pair of comments; what lies between them is replaced::

    <!-- results: recipe-digits -->
    | ... |
    <!-- /results -->

Each name is a function below that reads rows of ``benchmarks/store.py``'s files and returns Markdown.
A table shows, per case, the latest row of each seed on each machine and precision: the figure as
mean ± standard deviation over the seeds (min - max), the number of seeds and the hardware, and below
it the command that measured it. tests/test_docs.py fails when a page differs from what this prints,
so a figure cannot be edited by hand or left behind when the store changes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import store  # noqa: E402

BLOCK = re.compile(r"(?P<open><!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(?P<close><!-- /results -->)",
                   re.DOTALL)
TABLES: dict[str, Callable[[], str]] = {}
Row = dict[str, Any]


def pages() -> list[Path]:
    """Every page that may hold a generated table."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "trained_models" / "README.md"]


def table(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def register(function: Callable[[], str]) -> Callable[[], str]:
        TABLES[name] = function
        return function
    return register


# --- choosing and summarising rows --------------------------------------------------------------


def matches(row: Row, **case: Any) -> bool:
    return all(row["case"].get(key) == value for key, value in case.items())


def select(benchmark: str, **case: Any) -> list[Row]:
    """Rows of ``benchmark`` whose case has these values, the latest row of each seed per machine and precision."""
    latest: dict[tuple, Row] = {}
    for row in store.read(benchmark):
        if matches(row, **case):
            key = (repr(sorted(row["case"].items())), store.hardware(row["machine"]), row["precision"], row["seed"])
            if key not in latest or (row["date"] or "") >= (latest[key]["date"] or ""):
                latest[key] = row
    return list(latest.values())


def by_setting(rows: Iterable[Row]) -> dict[tuple[str, str | None], list[Row]]:
    """Rows grouped by hardware and precision, newest group first."""
    groups: dict[tuple[str, str | None], list[Row]] = {}
    for row in sorted(rows, key=lambda r: r["date"] or "", reverse=True):
        groups.setdefault((store.hardware(row["machine"]), row["precision"]), []).append(row)
    return groups


def spread(values: list[float], digits: int = 3, signed: bool = False) -> str:
    """``0.988 ± 0.003 (0.985 - 0.991)`` over seeds; the value alone for one."""
    sign = "+" if signed else ""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:{sign}.{digits}f}"
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f} ({min(values):{sign}.{digits}f} - {max(values):{sign}.{digits}f})"


def figure(rows: list[Row], name: str) -> list[float]:
    return [r["figures"][name] for r in rows if r["figures"].get(name) is not None]


def precision_name(precision: str | None) -> str:
    return {"bf16-mixed": "bf16", "32": "fp32", "32-true": "fp32", "16-mixed": "fp16", None: "-"}.get(precision, precision)


def newest_runs(benchmark: str, keep: Callable[[Row], bool] = lambda row: True) -> list[list[Row]]:
    """The newest run on each machine among the rows ``keep`` accepts, the newest first.

    A run is one invocation of a benchmark (its rows share ``run``); the rows of a run keep their order.
    """
    grouped: dict[str, list[Row]] = {}
    for row in store.read(benchmark):
        if keep(row):
            grouped.setdefault(row["run"], []).append(row)
    newest: dict[str, list[Row]] = {}
    # of runs recorded at the same time (rows migrated from one page), the one that measured most
    for rows in sorted(grouped.values(), key=lambda rows: (max(r["date"] or "" for r in rows), len(rows))):
        newest[store.hardware(rows[0]["machine"])] = rows
    return list(reversed(newest.values()))


def one(rows: list[Row], **case: Any) -> Row | None:
    """The row of ``rows`` with this case, if any."""
    return next((r for r in rows if matches(r, **case)), None)


def number(row: Row | None, name: str, digits: int = 1, suffix: str = "") -> str:
    value = None if row is None else row["figures"].get(name)
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def commands(rows: Iterable[Row]) -> str:
    """The commands that measured ``rows``, one per line under the table."""
    found = list(dict.fromkeys(r["command"] for r in rows if r.get("command")))
    if not found:
        return ""
    lines = "\n".join(found)
    return f"\n```bash\n{lines}\n```\n"


def markdown(header: list[str], lines: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines]
    return "\n".join(out) + "\n"


# --- the shipped model ---------------------------------------------------------------------------

SHIPPED_TARGETS = ("hood", "backdoor_left", "front_bumper", "rear", "roof", "frontdoor_left", "frontdoor_right",
                   "backdoor_right")


def shipped(**case: Any) -> dict[str, Row]:
    """The newest row of each target for this case of the shipped model."""
    rows = select("shipped", **case)
    newest: dict[str, Row] = {}
    for row in sorted(rows, key=lambda r: r["date"] or ""):
        newest[row["case"]["target"]] = row
    return newest


@table("shipped-r2")
def shipped_r2() -> str:
    columns = {"test split": shipped(data="test split", model="checkpoint", tta=False),
               "held-out": shipped(data="held-out", model="checkpoint", tta=False),
               "held-out, `--tta`": shipped(data="held-out", model="checkpoint", tta=True),
               "sample_set": shipped(data="sample_set", model="checkpoint", tta=False)}
    header = ["target"] + [f"{name} ({next(iter(rows.values()))['case']['images']:,} images)"
                           for name, rows in columns.items() if rows]
    lines = [[target] + [f"{rows[target]['figures']['r2']:.3f}" for rows in columns.values() if rows]
             for target in (*SHIPPED_TARGETS, "mean")]
    lines[-1][0] = "**mean**"
    shown = [rows["mean"] for rows in columns.values() if rows]
    settings: dict[str, list[str]] = {}
    for name, row in zip([n for n, r in columns.items() if r], shown, strict=True):
        setting = f"{store.hardware(row['machine'])}, {precision_name(row['precision'])}"
        settings.setdefault(setting, []).append(name)
    machines = "; ".join(f"{', '.join(names)}: {setting}" for setting, names in settings.items())
    return markdown(header, lines) + f"\nHardware and precision: {machines}.\n" + commands(shown)


@table("shipped-coverage")
def shipped_coverage() -> str:
    rows = shipped(data="held-out", model="checkpoint", tta=False)
    header = ["target", "coverage at 0.9", "width", "coverage, part out of sight", "width", "coverage, part in sight",
              "width"]
    lines = []
    for target in SHIPPED_TARGETS:
        f = rows[target]["figures"]
        lines.append([target, f"{f['coverage']:.3f}", f"{f['width']:.3f}", _maybe(f.get("coverage_hidden")),
                      _maybe(f.get("width_hidden")), _maybe(f.get("coverage_visible")), _maybe(f.get("width_visible"))])
    mean = rows["mean"]
    return (markdown(header, lines) + f"\n{mean['case']['images']:,} held-out photos; measured on "
            f"{store.hardware(mean['machine'])}, {precision_name(mean['precision'])}.\n" + commands([mean]))


def _maybe(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@table("shipped-int8")
def shipped_int8() -> str:
    lines, shown = [], []
    for model, name in (("checkpoint fp32", "checkpoint, PyTorch fp32"), ("openvino fp32", "OpenVINO fp32"),
                        ("openvino int8", "OpenVINO int8")):
        rows = shipped(data="held-out", model=model, tta=False)
        if not rows:
            continue
        pair = (rows["hood"]["figures"]["r2"] + rows["backdoor_left"]["figures"]["r2"]) / 2
        lines.append([name, f"{rows['mean']['figures']['r2']:.4f}", f"{pair:.4f}", f"{rows['hood']['figures']['r2']:.3f}",
                      f"{rows['backdoor_left']['figures']['r2']:.3f}", store.hardware(rows["mean"]["machine"])])
        shown.append(rows["mean"])
    header = ["model", "mean R², 8 targets", "mean of hood and backdoor_left", "hood", "backdoor_left", "hardware"]
    return markdown(header, lines) + commands(shown)


# --- training recipes (bench_recipe.py) ----------------------------------------------------------


def recipe_case(dataset: str, recipe: str = "toolkit", extra: str = "", pretrain: list[str] | None = None,
                pretrain_on: str | None = None, unlabelled: bool = False, epochs: int = 15,
                image_size: int = 64) -> dict[str, Any]:
    """A bench_recipe.py case, every key given, so that a table row never mixes two cases."""
    return {"dataset": dataset, "recipe": recipe, "extra": extra, "pretrain": pretrain, "pretrain_on": pretrain_on,
            "unlabelled": unlabelled, "epochs": epochs, "image_size": image_size}


def recipe_metric(dataset: str) -> str:
    return "test_accuracy" if dataset in ("digits", "fashion") else "test_r2"


def recipe_groups(case: dict[str, Any]) -> list[tuple[str, str | None, list[Row]]]:
    """(hardware, precision, rows) of one case, newest first."""
    return [(hardware, precision, rows) for (hardware, precision), rows in by_setting(select("recipe", **case)).items()]


def pretraining(rows: list[Row], hardware: str) -> str:
    seconds = figure(rows, "pretrain_seconds")
    if not seconds:
        return "-"
    where = rows[0]["case"].get("pretrain_on") or hardware
    return f"{statistics.fmean(seconds) / 60:,.0f} min, {where}"


def recipe_rows(entries: list[tuple[str, dict[str, Any]]], pretrain_column: bool = False) -> tuple[list[list[Any]], list[Row]]:
    lines, shown = [], []
    for label, case in entries:
        for hardware, precision, rows in recipe_groups(case):
            scores, seconds = figure(rows, recipe_metric(case["dataset"])), figure(rows, "seconds")
            wall = f"{statistics.fmean(seconds):,.0f}" + (f" ({min(seconds):,.0f} - {max(seconds):,.0f})"
                                                         if len(seconds) > 1 else "")
            line = [label, case["epochs"], len(rows), spread(scores), wall]
            if pretrain_column:
                line.append(pretraining(rows, hardware))
            lines.append([*line, precision_name(precision), hardware])
            shown += rows
    return lines, shown


def recipe_table(entries: list[tuple[str, dict[str, Any]]], score: str, pretrain_column: bool = False) -> str:
    lines, shown = recipe_rows(entries, pretrain_column)
    header = ["recipe", "`-e`", "seeds", f"{score}, mean ± std (min - max)", "wall s a run"]
    header += ["pretraining"] if pretrain_column else []
    return markdown([*header, "precision", "hardware"], lines) + commands(shown)


@table("recipe-small")
def recipe_small() -> str:
    entries = []
    for dataset, extra in (("digits", "--flip-pairs none"), ("synthetic", "")):
        for epochs in (15, 30):
            name = f"{dataset}: toolkit" + (f", `{extra}`" if extra else ", defaults")
            entries += [(name, recipe_case(dataset, extra=extra, epochs=epochs)),
                        (f"{dataset}: plain PyTorch loop", recipe_case(dataset, "plain", epochs=epochs))]
    return recipe_table(entries, "test score")


SIMCLR_32 = ["-e 18 --image-size 32"]
AVX2_EPYC = "2-core AMD EPYC (AVX2 only)"


@table("recipe-fashion")
def recipe_fashion() -> str:
    entries = [
        ("random weights, defaults", recipe_case("fashion")),
        ("random weights, plain PyTorch loop", recipe_case("fashion", "plain")),
        ("random weights, `--unlabelled pool --semi self-training`",
         recipe_case("fashion", extra="--semi self-training", unlabelled=True)),
        ("pretrained (`pretrain -e 18 --image-size 32`)", recipe_case("fashion", pretrain=SIMCLR_32)),
        ("pretrained, then `--unlabelled pool` (FixMatch)",
         recipe_case("fashion", pretrain=SIMCLR_32, pretrain_on=AVX2_EPYC, unlabelled=True)),
        ("**pretrained, then `--unlabelled pool --fixmatch-with-val`**",
         recipe_case("fashion", extra="--fixmatch-with-val", pretrain=SIMCLR_32, pretrain_on=AVX2_EPYC, unlabelled=True)),
        ("**pretrained, then `--unlabelled pool --fixmatch-with-val`**",
         recipe_case("fashion", extra="--fixmatch-with-val", pretrain=SIMCLR_32, unlabelled=True)),
    ]
    return recipe_table(entries, "test accuracy", pretrain_column=True)


@table("recipe-fashion-pretraining")
def recipe_fashion_pretraining() -> str:
    h200 = "one NVIDIA H200 (16 CPU cores)"
    entries = [
        ("SimCLR `-e 18 --image-size 32`", recipe_case("fashion", pretrain=SIMCLR_32)),
        ("the same, fine-tuned at 32 px", recipe_case("fashion", pretrain=SIMCLR_32, image_size=32)),
        ("the same, fine-tuned at 96 px", recipe_case("fashion", pretrain=SIMCLR_32, image_size=96)),
        ("SimCLR, then `-e 14` more", recipe_case("fashion", pretrain=[*SIMCLR_32, "-e 14 --image-size 32"])),
        ("SimCLR, then `-e 6 --blur-prob 1` more",
         recipe_case("fashion", pretrain=[*SIMCLR_32, "--blur-prob 1 -e 6 --image-size 32"])),
        ("SimCLR, then `-e 6 -s 512 -l 2e-3` more",
         recipe_case("fashion", pretrain=[*SIMCLR_32, "-e 6 --image-size 32 -l 2e-3 -s 512"])),
        ("SimCLR `--blur-prob 0`", recipe_case("fashion", pretrain=["--blur-prob 0 -e 18 --image-size 32"])),
        ("DCL `--method dcl --blur-prob 0`",
         recipe_case("fashion", pretrain=["--blur-prob 0 -e 18 --image-size 32 --method dcl"])),
        ("BYOL `--method byol`", recipe_case("fashion", pretrain=["-e 18 --image-size 32 --method byol"])),
        ("SimCLR `-e 11` at 64 px", recipe_case("fashion", pretrain=["-e 11"], pretrain_on=h200)),
        ("the same, `-e 30` fine-tune", recipe_case("fashion", pretrain=["-e 11"], pretrain_on=h200, epochs=30)),
        ("SimCLR `-e 11`, then `-e 10` more at 64 px", recipe_case("fashion", pretrain=["-e 11", "-e 10"],
                                                                   pretrain_on=h200)),
    ]
    return recipe_table(entries, "test accuracy", pretrain_column=True)


@table("recipe-fashion-flags")
def recipe_fashion_flags() -> str:
    entries = [(f"`{flag}`", recipe_case("fashion", extra=flag, pretrain=SIMCLR_32))
               for flag in ("--ema-decay 0", "--augment none", "--augment strong", "--dropout 0.3", "--label-smoothing 0.1",
                            "--tta", "-s 16")]
    entries.insert(0, ("defaults", recipe_case("fashion", pretrain=SIMCLR_32)))
    entries.append(("`--unlabelled pool --semi self-training`",
                    recipe_case("fashion", extra="--semi self-training", pretrain=SIMCLR_32, unlabelled=True)))
    return recipe_table(entries, "test accuracy")


@table("recipe-cars")
def recipe_cars() -> str:
    h200 = "one NVIDIA H200 (16 CPU cores)"
    entries = [
        ("random weights, defaults", recipe_case("cars")),
        ("random weights, defaults", recipe_case("cars", epochs=30)),
        ("pretrained, `-e 20`", recipe_case("cars", pretrain=["-e 20"])),
        ("pretrained, `-e 20 --hflip-prob 0`", recipe_case("cars", pretrain=["-e 20 --hflip-prob 0"])),
        ("pretrained, `-e 20 --hflip-prob 0 --method vicreg`",
         recipe_case("cars", pretrain=["-e 20 --hflip-prob 0 --method vicreg"])),
        ("pretrained, `-e 40 --hflip-prob 0`", recipe_case("cars", pretrain=["-e 40 --hflip-prob 0"])),
        ("pretrained, `-e 40 --hflip-prob 0`", recipe_case("cars", pretrain=["-e 40 --hflip-prob 0"], epochs=30)),
        ("the same, `--backbone-lr-scale 0.3`",
         recipe_case("cars", extra="--backbone-lr-scale 0.3", pretrain=["-e 40 --hflip-prob 0"])),
        ("the same, `--freeze-epochs 2`",
         recipe_case("cars", extra="--freeze-epochs 2", pretrain=["-e 40 --hflip-prob 0"])),
        ("**pretrained, `-e 100 --hflip-prob 0`**", recipe_case("cars", pretrain=["-e 100 --hflip-prob 0"])),
        ("pretrained, `-e 100 --hflip-prob 0`", recipe_case("cars", pretrain=["-e 100 --hflip-prob 0"],
                                                            pretrain_on=h200)),
        ("pretrained, `-e 100 --hflip-prob 0`", recipe_case("cars", pretrain=["-e 100 --hflip-prob 0"],
                                                            pretrain_on=h200, epochs=30)),
    ]
    return recipe_table(entries, "test R²", pretrain_column=True)


@table("recipe-mix")
def recipe_mix() -> str:
    h200 = "one NVIDIA H200 (16 CPU cores)"
    entries = [
        ("cars, random weights, defaults", recipe_case("cars")),
        ("cars, random weights, `--mix mixup`", recipe_case("cars", extra="--mix mixup")),
        ("cars, random weights, `--mix cmixup`", recipe_case("cars", extra="--mix cmixup")),
        ("cars, pretrained `-e 100 --hflip-prob 0`", recipe_case("cars", pretrain=["-e 100 --hflip-prob 0"],
                                                                 pretrain_on=h200)),
        ("cars, the same, `--mix mixup`", recipe_case("cars", extra="--mix mixup", pretrain=["-e 100 --hflip-prob 0"],
                                                      pretrain_on=h200)),
        ("fashion, pretrained `-e 11`", recipe_case("fashion", pretrain=["-e 11"], pretrain_on=h200)),
        ("fashion, the same, `--mix mixup`", recipe_case("fashion", extra="--mix mixup", pretrain=["-e 11"],
                                                         pretrain_on=h200)),
        ("fashion, the same, `--mix cutmix`", recipe_case("fashion", extra="--mix cutmix", pretrain=["-e 11"],
                                                          pretrain_on=h200)),
        ("fashion, the same, `--augment trivial`", recipe_case("fashion", extra="--augment trivial",
                                                               pretrain=["-e 11"], pretrain_on=h200)),
    ]
    return recipe_table(entries, "test score")


# --- trust: the label audit, interval calibration, selection --------------------------------------

AUDIT_CORRUPTIONS = {"flip": "one target flipped, `1 - x`", "shift": "one target shifted by ±0.3",
                     "copy": "one target copied from another photo", "swap": "the whole row from another photo",
                     "relabel": "the class (`view`, 8 viewpoints) changed to another"}
AUDIT_STARTS = {"shipped": "the shipped model", "shipped-backbone": "the shipped backbone", "scratch": "random weights"}


@table("audit")
def audit() -> str:
    lines, shown = [], []
    for corruption, corruption_name in AUDIT_CORRUPTIONS.items():
        for start, start_name in AUDIT_STARTS.items():
            for hardware, precision, rows in [(h, p, r) for (h, p), r in
                                              by_setting(select("audit", corruption=corruption, start=start)).items()]:
                found = figure(rows, "found_in_2k")
                seconds = figure(rows, "seconds")
                lines.append([corruption_name, start_name, len(rows), spread(figure(rows, "precision_at_k"), 2),
                              f"{statistics.fmean(found):.2f}", sum(figure(rows, "invisible_rows")),
                              f"{statistics.fmean(figure(rows, 'chance')):.3f}",
                              f"{min(seconds) / 60:.0f} - {max(seconds) / 60:.0f}" if seconds else "-",
                              precision_name(precision), hardware])
                shown += rows
    header = ["corruption (5% of 400 rows)", "fold runs start from", "seeds",
              "precision among as many worst rows, mean ± std (min - max)", "found in twice as many",
              "invisible changes (< 0.1), counted apart", "chance", "minutes an audit", "precision", "hardware"]
    return markdown(header, lines) + commands(shown)


@table("intervals")
def intervals() -> str:
    lines, shown = [], []
    calibrations = {"split": "the model's validation split", "out of fold": "`audit --calibrate`"}
    rows = sorted(store.read("intervals"), key=lambda r: (r["case"]["fresh_images"], r["case"]["validation_images"]))
    for row in rows:
        case, f = row["case"], row["figures"]
        lines.append([case["validation_images"], calibrations[case["calibration"]], f["calibration_images"],
                      case["fresh_images"], f"{f['coverage_min']:.3f} - {f['coverage_max']:.3f}",
                      number(row, "mean_width", 3), "yes" if f.get("warned") else "no", store.hardware(row["machine"])])
        shown.append(row)
    header = ["validation images", "calibration", "rests on (fewest a group)", "fresh photos",
              "coverage at 0.9, lowest - highest target", "mean width", "`--interval` warned", "hardware"]
    return markdown(header, lines) + commands(shown)


SELECT_METHODS = ("balanced", "uncertainty", "random")


@table("select")
def select_table() -> str:
    lines, shown = [], []
    for task, metric in (("digits", "test_accuracy"), ("cars", "test_r2")):
        random = {r["seed"]: r["figures"][metric] for r in select("select", task=task, method="random")}
        for method in SELECT_METHODS:
            for (hardware, precision), rows in by_setting(select("select", task=task, method=method)).items():
                gains = [r["figures"][metric] - random[r["seed"]] for r in rows if r["seed"] in random]
                gain = "-" if method == "random" or not gains else spread(gains, 3, signed=True).split(" (")[0]
                lines.append([task, method, len(rows), spread(figure(rows, metric)), gain, precision_name(precision),
                              hardware])
                shown += rows
    header = ["task", "picked by", "seeds", "test score after labelling, mean ± std (min - max)",
              "gain over random, paired by seed", "precision", "hardware"]
    return markdown(header, lines) + commands(shown)


# --- the novelty flag -------------------------------------------------------------------------------

NOVELTY_DEFAULT = "toolkit: kNN k=1 (default)"
NOVELTY_SAME = "pytorch-ood KNN k=1"  # the same score through another search: shown as a check, not a column


def novelty_run(model: str) -> list[Row]:
    """The newest bench_novelty.py run's detector rows of ``model`` (on the newest machine)."""
    runs = newest_runs("novelty", lambda row: row["case"].get("model") == model and "detector" in row["case"])
    return runs[0] if runs else []


def novelty_detectors(rows: list[Row]) -> list[str]:
    return [d for d in dict.fromkeys(r["case"]["detector"] for r in rows) if d != NOVELTY_SAME]


def auroc_cell(rows: list[Row]) -> str:
    values = figure(rows, "auroc")
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.3f} - {max(values):.3f})"


def novelty_setting(rows: list[Row]) -> str:
    inside = [r for r in rows if r["case"]["kind"] == "in-distribution"]
    seeds = sorted({r["seed"] for r in inside})
    images = inside[0]["figures"]["images"] if inside else 0
    return (f"In distribution: {images:,} fresh photos of each of {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
            f"{precision_name(rows[0]['precision'])}, {store.hardware(rows[0]['machine'])}.")


def same_score_check(rows: list[Row]) -> str:
    """How far pytorch-ood's KNN at k=1 is from the toolkit's score: the same detector, another search."""
    ours = {(r["case"]["shift"], r["seed"]): r["figures"]["auroc"] for r in rows
            if r["case"]["detector"] == NOVELTY_DEFAULT and "auroc" in r["figures"]}
    theirs = {(r["case"]["shift"], r["seed"]): r["figures"]["auroc"] for r in rows
              if r["case"]["detector"] == NOVELTY_SAME and "auroc" in r["figures"]}
    both = ours.keys() & theirs.keys()
    if not both:
        return ""
    gap = max(abs(ours[k] - theirs[k]) for k in both)
    return (f" pytorch-ood's KNN at k = 1 (the same score through scikit-learn's search) gives the same AUROCs "
            f"(largest difference {gap:.4f}).")


@table("novelty-shifts")
def novelty_shifts() -> str:
    rows = novelty_run("shipped resnet18")
    if not rows:
        return "(not measured yet)\n"
    detectors = novelty_detectors(rows)
    shifts = [(r["case"]["kind"], r["case"]["shift"]) for r in rows
              if r["case"]["detector"] == NOVELTY_DEFAULT and r["case"]["kind"] != "in-distribution"]
    lines = []
    for kind, shift in dict.fromkeys(shifts):
        lines.append([shift, kind, *(auroc_cell([r for r in rows if matches(r, detector=d, shift=shift)])
                                     for d in detectors)])
    header = ["shift", "kind", *detectors]
    note = (f"\nAUROC against the fresh in-distribution photos: the mean over their seeds (lowest - highest). "
            f"{novelty_setting(rows)}{same_score_check(rows)}\n")
    return markdown(header, lines) + note + commands(rows[:1])


@table("novelty-alarms")
def novelty_alarms() -> str:
    rows = novelty_run("shipped resnet18")
    if not rows:
        return "(not measured yet)\n"
    lines = []
    for detector in novelty_detectors(rows):
        inside = sorted((r for r in rows if matches(r, detector=detector, kind="in-distribution")),
                        key=lambda r: r["seed"])
        if inside:
            lines.append([detector, *(f"{r['figures']['flagged']:.3f}" for r in inside),
                          f"{statistics.fmean(figure(inside, 'flagged')):.4f}"])
    first = next(r for r in rows if r["case"]["kind"] == "in-distribution")
    seeds = [f"seed {r['seed']}" for r in sorted(rows, key=lambda r: r["seed"] or 0)
             if matches(r, detector=NOVELTY_DEFAULT, kind="in-distribution")]
    header = ["detector", *seeds, "mean"]
    note = (f"\nThe share of fresh in-distribution photos flagged at novelty p <= {first['figures']['level']}, each "
            f"detector calibrated on the same {first['figures']['calibration_images']:,} photos. "
            f"{novelty_setting(rows)}\n")
    return markdown(header, lines) + note + commands(rows[:1])


@table("novelty-classifier")
def novelty_classifier() -> str:
    rows = novelty_run("digits classifier")
    if not rows:
        return "(not measured yet)\n"
    lines = []
    for detector in novelty_detectors(rows):
        auroc = one(rows, detector=detector, shift="Fashion-MNIST")
        inside = one(rows, detector=detector, kind="in-distribution")
        lines.append([detector, number(auroc, "auroc", 3), number(inside, "flagged", 3)])
    inside = one(rows, detector=NOVELTY_DEFAULT, kind="in-distribution")
    outside = one(rows, detector=NOVELTY_DEFAULT, shift="Fashion-MNIST")
    header = ["detector", "AUROC, Fashion-MNIST against the test digits", "test digits flagged at 0.01"]
    note = (f"\n{inside['figures']['images']:,} test digits, {outside['figures']['images']:,} Fashion-MNIST photos; "
            f"each detector calibrated on the {inside['figures']['calibration_images']} validation digits; "
            f"{precision_name(rows[0]['precision'])}, {store.hardware(rows[0]['machine'])}.\n")
    return markdown(header, lines) + note + commands(rows[:1])


@table("novelty-cost")
def novelty_cost() -> str:
    runs = newest_runs("novelty", lambda row: row["case"].get("part") == "cost")
    if not runs:
        return "(not measured yet)\n"
    lines, shown = [], []
    for rows in runs:
        with_, without = one(rows, summary="with"), one(rows, summary="without")
        ratio = with_["figures"]["images_per_second"] / without["figures"]["images_per_second"]
        sizes = with_["case"]["images"]
        lines.append([number(without, "images_per_second"), number(with_, "images_per_second"), f"{ratio:.3f}",
                      number(with_, "summary_mb", 2), f"{sizes[1] - sizes[0]:,}", precision_name(with_["precision"]),
                      store.hardware(with_["machine"])])
        shown += rows
    header = ["`perspective infer`, images/s without the summary", "with it", "ratio", "summary, MB",
              "images (marginal)", "precision", "hardware"]
    return markdown(header, lines) + commands(shown)


# --- a peer ------------------------------------------------------------------------------------------


@table("peers-infer")
def peers_infer() -> str:
    runs = newest_runs("peers")
    if not runs:
        return "(not measured yet)\n"
    lines, shown = [], []
    for rows in runs:
        decode = one(rows, tool="perspective", path="decode")
        for row in [r for r in rows if r["case"]["path"] == "infer"]:
            case, f = row["case"], row["figures"]
            model = one(rows, tool=case["tool"], setting=case["setting"], path="model")
            lines.append([f"{case['tool']}, {case['setting']}", precision_name(row["precision"]),
                          f"**{f['images_per_s']:.1f}**", f"{f['ratio_to_timm_best']:.2f}x" if "ratio_to_timm_best" in f
                          else "-", number(model, "images_per_s"), number(decode, "images_per_s") if model else "-",
                          f"{f['ceiling']:.1f} ({f['share_of_ceiling']:.2f})" if "ceiling" in f else "-",
                          f"{f['images_per_s'] / model['figures']['images_per_s']:.2f}" if model else "-",
                          store.hardware(row["machine"])])
        shown += rows
    header = ["what runs resnet18", "precision", "end to end, images/s", "against timm's best", "model alone",
              "decoding alone", "ceiling taking turns (end to end's share)", "end to end / model alone", "hardware"]
    return markdown(header, lines) + commands(shown)


# --- the README's first run ------------------------------------------------------------------------


def quickstart_row(run: str) -> Row | None:
    rows = newest_runs("quickstart", lambda r: r["case"]["run"] == run)
    return rows[0][0] if rows else None


@table("quickstart")
def quickstart() -> str:
    lines, shown = [], []
    for rows in newest_runs("quickstart"):
        for row in rows:
            lines.append([f"`{row['case']['command']}`", f"{row['figures']['seconds'] / 60:.1f} min",
                          f"{row['figures']['test_r2']:.3f}", precision_name(row["precision"]), store.hardware(row["machine"])])
            shown.append(row)
    header = ["command", "wall time, data generation included", "R² on its held-out test split", "precision", "hardware"]
    return markdown(header, lines) + commands(shown)


# --- prediction, serving and the other speed figures ------------------------------------------------


def _infer_plain(row: Row) -> bool:
    """bench_infer's rows of today's design (no older decoding variant)."""
    return "decoding" not in row["case"]


@table("infer-throughput")
def infer_throughput() -> str:
    runs = newest_runs("infer", lambda r: _infer_plain(r) and r["case"]["path"] in ("naive", "model", "infer")
                       and r["case"]["runtime"] in ("torch", "onnxruntime") and r["case"]["weights"] == "fp32")
    lines, shown = [], []
    for rows in runs:
        backbones = list(dict.fromkeys(r["case"]["backbone"] for r in rows))
        runtimes = [("torch", "PyTorch"), ("onnxruntime", "ONNX Runtime")]
        for backbone in backbones:
            for runtime, runtime_name in runtimes:
                naive = one(rows, backbone=backbone, runtime=runtime, path="naive")
                model = one(rows, backbone=backbone, runtime=runtime, path="model")
                infer = one(rows, backbone=backbone, runtime=runtime, path="infer")
                if infer is None:
                    continue
                lines.append([backbone, runtime_name, precision_name(infer["precision"]), number(naive, "images_per_s"),
                              number(model, "images_per_s"), f"**{number(infer, 'images_per_s')}**",
                              number(infer, "ratio_to_naive", 2, "x"), number(infer, "ratio_to_model", 2),
                              store.hardware(infer["machine"])])
                shown.append(infer)
    header = ["backbone", "runtime", "precision", "(a) usual loop", "(b) model alone", "(c) `perspective infer`", "c/a",
              "c/b", "hardware"]
    return markdown(header, lines) + commands(shown)


@table("infer-memory")
def infer_memory() -> str:
    runs = newest_runs("infer", lambda r: r["case"]["path"] in ("infer whole run", "infer --list")
                       and "peak_rss_mib" in r["figures"])
    lines, shown = [], []
    for rows in runs:
        for row in rows:
            case = row["case"]
            what = (f"`--list` of {case['paths']:,} paths ({case['real_images']:,} real images)"
                    if case["path"] == "infer --list" else
                    f"{case['images']:,} images, {case.get('processes', 1)} process{'es' if case.get('processes', 1) > 1 else ''}")
            same = row["figures"].get("same_rows_as_one_process")
            lines.append([what, number(row, "peak_rss_mib", 0), number(row, "seconds", 0),
                          "-" if same is None else ("yes" if same else "no"), store.hardware(row["machine"])])
            shown.append(row)
    header = ["what `perspective infer` read", "peak memory, MiB", "seconds", "same rows as one process", "hardware"]
    return markdown(header, lines) + commands(shown)


@table("infer-int8")
def infer_int8() -> str:
    runs = newest_runs("infer", lambda r: r["case"]["path"] in ("model", "infer") and r["case"]["backbone"] == "resnet18"
                       and r["case"]["runtime"] in ("torch", "openvino") and _infer_plain(r))
    runs = [rows for rows in runs if any(r["case"]["runtime"] == "openvino" for r in rows)]
    lines, shown = [], []
    for rows in runs[:2]:
        for runtime, weights, name in (("torch", "fp32", "PyTorch"), ("openvino", "fp32", "OpenVINO fp32"),
                                       ("openvino", "int8", "OpenVINO int8")):
            model = one(rows, runtime=runtime, weights=weights, path="model")
            infer = one(rows, runtime=runtime, weights=weights, path="infer")
            if infer is None:
                continue
            ratio = "1.00x" if runtime == "torch" else number(infer, "ratio_to_torch", 2, "x")
            lines.append([name, precision_name(infer["precision"]), number(model, "images_per_s"),
                          f"**{number(infer, 'images_per_s')}**", ratio, store.hardware(infer["machine"])])
            shown.append(infer)
    header = ["model (resnet18, 224 px)", "arithmetic", "model alone, images/s", "`perspective infer`, images/s",
              "against PyTorch", "hardware"]
    return markdown(header, lines) + commands(shown)


@table("decode")
def decode() -> str:
    runs = newest_runs("decode", lambda r: "candidates" not in r["case"])
    lines, shown = [], []
    for rows in runs[:1]:
        for row in rows:
            diff = row["figures"].get("max_pixel_diff")
            lines.append([row["case"]["candidate"], number(row, "ms_per_image", 3), "-" if diff is None else diff])
            shown.append(row)
    machine = store.hardware(shown[0]["machine"]) if shown else "-"
    return (markdown(["candidate", "ms of one core per image", "largest pixel difference from the path"], lines)
            + f"\nOne thread of a {machine}.\n" + commands(shown))


@table("train-throughput")
def train_throughput() -> str:
    lines, shown = [], []
    for rows in newest_runs("train"):
        for row in rows:
            case = row["case"]
            lines.append([case["side"], f"{case['backbone']}, {case['image_size']} px, batch {case['batch_size']}",
                          precision_name(row["precision"]), f"**{number(row, 'images_per_s')}**",
                          number(row, "lightning_overhead_percent", 1, "%"), store.hardware(row["machine"])])
            shown.append(row)
    header = ["side", "model", "precision", "images/s", "Lightning's overhead", "hardware"]
    return markdown(header, lines) + commands(shown)


@table("pretrain-throughput")
def pretrain_throughput() -> str:
    lines, shown = [], []
    for rows in newest_runs("pretrain"):
        for row in rows:
            case, f = row["case"], row["figures"]
            rate = (f"{f['images_per_s_min']:,.0f} - {f['images_per_s_max']:,.0f}" if f.get("images_per_s_min") else
                    number(row, "images_per_s", 0))
            per_epoch = f.get("seconds_per_epoch") or (f["fit_seconds"] / case["epochs"] if f.get("fit_seconds") else None)
            lines.append([case["pool"], f"{case['images']:,}", f"{case['method']} `-e {case['epochs']}` at "
                          f"{case['image_size']} px", rate, "-" if per_epoch is None else f"{per_epoch:,.0f}",
                          number(row, "wall_seconds", 0), precision_name(row["precision"]), store.hardware(row["machine"])])
            shown.append(row)
    header = ["pool", "images", "pretraining", "images/s", "s an epoch", "wall s", "precision", "hardware"]
    return markdown(header, lines) + commands(shown)


def _serve_current(row: Row) -> bool:
    """bench_serve's rows of today's server (batches normalised where the model runs) on an idle machine."""
    return "normalisation" not in row["case"] and not row["case"].get("load")


@table("serve")
def serve() -> str:
    lines, shown = [], []
    grouped: dict[str, list[Row]] = {}
    for row in store.read("serve"):
        if _serve_current(row):
            grouped.setdefault(row["run"], []).append(row)
    for rows in sorted(grouped.values(), key=lambda rows: rows[0]["date"] or "", reverse=True):
        for row in rows:
            case = row["case"]
            lines.append([f"{case['backbone']}, {case['image_size']} px", precision_name(row["precision"]),
                          case["concurrency"], number(row, "p50_ms"), number(row, "p95_ms"),
                          f"**{number(row, 'images_per_s')}**", number(row, "throughput_ratio_to_1", 2, "x"),
                          number(row, "p95_ratio_to_p50_at_1", 2, "x"), store.hardware(row["machine"])])
            shown.append(row)
    header = ["model", "precision", "concurrency", "p50 ms", "p95 ms", "images/s", "throughput against 1",
              "p95 against the p50 at 1", "hardware"]
    return markdown(header, lines) + commands(shown)


@table("help")
def help_startup() -> str:
    lines, shown = [], []
    for rows in newest_runs("help", lambda r: r["case"]["command"] == "every command"):
        row = rows[0]
        lines.append([f"{row['figures']['median_seconds_min']:.2f} - {row['figures']['median_seconds_max']:.2f}",
                      store.hardware(row["machine"])])
        shown.append(row)
    return markdown(["median seconds of `-h`, fastest - slowest command", "hardware"], lines) + commands(shown)


@table("synth")
def synth_speed() -> str:
    lines, shown = [], []
    for rows in newest_runs("synth"):
        for row in rows:
            lines.append([row["case"]["size"], row["case"]["workers"], f"**{number(row, 'images_per_s', 0)}**",
                          store.hardware(row["machine"])])
            shown.append(row)
    return markdown(["size", "rendering processes (`-w`)", "images/s", "hardware"], lines) + commands(shown)


@table("saliency")
def saliency() -> str:
    lines, shown = [], []
    for rows in newest_runs("saliency", lambda r: r["case"]["model"] == "shipped")[:1]:
        for row in rows:
            f = row["figures"]
            lines.append([row["case"]["target"], f["images_visible"], f["empty_maps"], f"{f['mass_on_part']:.3f}",
                          f"{f['part_area']:.3f}", f"**{f['lift']:.1f}**", f"{f['mass_on_car']:.3f}"])
            shown.append(row)
    machine = store.hardware(shown[0]["machine"]) if shown else "-"
    header = ["target", "images with the part in sight", "empty maps", "mass on the part", "the part's share of the photo",
              "lift", "mass on the car"]
    return markdown(header, lines) + f"\nThe shipped model on {shown[0]['case']['images'] if shown else '-'} held-out " \
        f"photos, measured on a {machine}.\n" + commands(shown)


# --- README.md's headline figures --------------------------------------------------------------------


def seeds_summary(rows: list[Row], name: str, digits: int = 3) -> str:
    values = figure(rows, name)
    mean = statistics.fmean(values)
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def setting_of(*groups: list[Row]) -> str:
    """The hardware and precision of groups of rows, each said once: ``2-core AMD EPYC ..., bf16 / fp32``."""
    hardware = list(dict.fromkeys(store.hardware(rows[0]["machine"]) for rows in groups))
    precisions = list(dict.fromkeys(precision_name(rows[0]["precision"]) for rows in groups))
    return f"{' / '.join(hardware)}, {' / '.join(precisions)}"


def newest_pair(case: dict[str, Any], baseline: dict[str, Any], same_setting: bool = True,
                precision: str | None = None) -> tuple[list[Row], list[Row]]:
    """The newest rows of ``case`` (in ``precision``, if given) and of ``baseline``, from one machine where both
    were measured there."""
    ours, theirs = by_setting(select("recipe", **case)), by_setting(select("recipe", **baseline))
    ours = {key: rows for key, rows in ours.items() if precision in (None, key[1])}
    if same_setting:
        for (hardware, _), rows in ours.items():
            match = [r for (h, _), r in theirs.items() if h == hardware]
            if match:
                return rows, match[0]
    return next(iter(ours.values())), next(iter(theirs.values()))


def recipe_line(what: str, case: dict, baseline: dict, score: str, link: str, same_setting: bool = True,
                precision: str | None = None) -> list[str]:
    rows, base = newest_pair(case, baseline, same_setting, precision)
    metric = recipe_metric(case["dataset"])
    seeds = len(rows) if len(rows) == len(base) else f"{len(rows)} and {len(base)}"
    return [what, f"{score} {seeds_summary(rows, metric)} against {seeds_summary(base, metric)} ({seeds} seeds)",
            setting_of(rows, base), link]


@table("readme-measured")
def readme_measured() -> str:
    lines = [
        recipe_line("the default recipe against a plain PyTorch loop, digits from scratch, `-e 15`",
                    recipe_case("digits", extra="--flip-pairs none"), recipe_case("digits", "plain"), "test accuracy",
                    "[Training](docs/training.md#measured-the-recipe-benchmark)"),
        recipe_line("300 labelled car photos, pretrained first on 3,000 unlabelled ones, from scratch",
                    recipe_case("cars", pretrain=["-e 100 --hflip-prob 0"]), recipe_case("cars"), "held-out R²",
                    "[Training](docs/training.md#measured-car-scores-from-300-labelled-photos)"),
        recipe_line("500 labelled Fashion-MNIST photos and 59,500 unlabelled: pretraining, then "
                    "`train --unlabelled --fixmatch-with-val`, against the default",
                    recipe_case("fashion", extra="--fixmatch-with-val", pretrain=SIMCLR_32, pretrain_on=AVX2_EPYC,
                                unlabelled=True), recipe_case("fashion"), "test accuracy",
                    "[Training](docs/training.md#measured-few-labels-many-unlabelled-photos-fashion-mnist-500)",
                    same_setting=False, precision="32-true"),
    ]
    held_out = shipped(data="held-out", model="checkpoint", tta=False)
    if held_out:
        r2 = {t: held_out[t]["figures"]["r2"] for t in SHIPPED_TARGETS}
        low, high = min(r2, key=r2.get), max(r2, key=r2.get)
        mean = held_out["mean"]
        lines.append([f"the shipped model on {mean['case']['images']:,} held-out synthetic photos",
                      f"R² {r2[low]:.3f} ({low}) to {r2[high]:.3f} ({high})", setting_of([mean]),
                      "[Shipped model](trained_models/README.md)"])
        coverage = [held_out[t]["figures"]["coverage"] for t in SHIPPED_TARGETS]
        lines.append(["conformal intervals at 0.9, the shipped model, the same photos",
                      f"coverage {min(coverage):.3f} to {max(coverage):.3f} per target", setting_of([mean]),
                      "[Trust](docs/trust.md#conformal-intervals-how-sure-is-a-score)"])
    novelty = novelty_run("shipped resnet18")
    if novelty:
        mine = [r for r in novelty if r["case"]["detector"] == NOVELTY_DEFAULT]
        far = figure([r for r in mine if r["case"]["kind"] == "far"], "auroc")
        flagged = figure([r for r in mine if r["case"]["kind"] == "in-distribution"], "flagged")
        lines.append(["the novelty flag, the shipped model: photos of other kinds against fresh car photos",
                      f"AUROC {min(far):.3f} or more; {min(flagged):.3f} to {max(flagged):.3f} of fresh car photos "
                      f"flagged at 0.01 ({len(flagged)} seeds)", setting_of(mine),
                      "[Trust](docs/trust.md#novelty-is-this-photo-like-the-training-photos)"])
    runs = newest_runs("infer", lambda r: r["case"]["path"] == "infer" and r["case"]["backbone"] == "resnet18"
                       and r["case"]["runtime"] == "torch" and "ratio_to_naive" in r["figures"])
    if runs:
        row = runs[0][0]
        lines.append(["`perspective infer` in PyTorch (`--runtime torch`), resnet18 at 224 px, end to end",
                      f"{row['figures']['images_per_s']:.1f} images/s, {row['figures']['ratio_to_naive']:.1f}x the usual "
                      "PIL loop", setting_of([row]), "[Performance](docs/performance.md#prediction-throughput)"])
    peers = newest_runs("peers")
    if peers:
        timm = one(peers[0], tool="timm", setting="best CPU flags", path="infer")
        ours = one(peers[0], tool="perspective", setting="defaults", path="infer")
        if timm and ours:
            lines.append(["`perspective infer` with its defaults (OpenVINO on the CPU) against timm's best CPU flags, "
                          "resnet18 at 224 px", f"{ours['figures']['ratio_to_timm_best']:.2f}x "
                          f"({ours['figures']['images_per_s']:.1f} against {timm['figures']['images_per_s']:.1f} "
                          "images/s)", setting_of([ours]), "[Performance](docs/performance.md#beside-a-peer-timm)"])
    runs = newest_runs("infer", lambda r: r["case"]["path"] == "infer" and r["case"]["weights"] == "int8")
    if runs:
        row = runs[0][0]
        lines.append(["int8 through OpenVINO, end to end", f"{row['figures']['ratio_to_torch']:.2f}x the PyTorch path "
                      f"({row['figures']['images_per_s']:.1f} images/s)", setting_of([row]),
                      "[Performance](docs/performance.md#int8-through-openvino)"])
    serving = [rows for rows in newest_runs("serve", _serve_current)]
    if serving:
        row = one(serving[0], concurrency=8)
        lines.append(["the server at concurrency 8 against 1", f"{row['figures']['throughput_ratio_to_1']:.2f}x the "
                      f"throughput, p95 {row['figures']['p95_ratio_to_p50_at_1']:.2f}x the single p50", setting_of([row]),
                      "[Performance](docs/performance.md#serving)"])
    shift = by_setting(select("audit", corruption="shift", start="shipped"))
    if shift:
        rows = next(iter(shift.values()))
        wrong = figure(rows, "wrong_rows")
        lines.append(["label audit: one score of 5% of 400 photos shifted by 0.3, folds from the shipped model",
                      f"{seeds_summary(rows, 'precision_at_k', 2)} of the {min(wrong):.0f}-{max(wrong):.0f} worst rows are "
                      f"those rows ({len(rows)} seeds; chance {statistics.fmean(figure(rows, 'chance')):.2f})",
                      setting_of(rows), "[Trust](docs/trust.md#label-audit)"])
    return markdown(["what", "figure", "hardware, precision", "where"], lines)


@table("readme-quickstart")
def readme_quickstart() -> str:
    train, smoke = quickstart_row("train"), quickstart_row("smoke")
    if train is None:
        return "\n"
    text = (f"The training run takes about {train['figures']['seconds'] / 60:.0f} minutes on a "
            f"{store.hardware(train['machine'])} ({precision_name(train['precision'])}), data generation included, and "
            f"scores a held-out R² of {train['figures']['test_r2']:.2f}")
    if smoke is not None:
        text += (f"; `{smoke['case']['command']}` checks the set-up in about "
                 f"{smoke['figures']['seconds']:.0f} seconds")
    return text + " ([measured](docs/training.md#synthetic-car-perspective-data)).\n"


# --- the pages -----------------------------------------------------------------------------------


def render(text: str, source: Path) -> str:
    """``text`` with every results block regenerated."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"{source.relative_to(ROOT)}: no table named {name!r} in docs/results_tables.py")
        return match["open"] + TABLES[name]() + match["close"]
    return BLOCK.sub(replace, text)


def regenerated() -> dict[Path, tuple[str, str]]:
    """Each page with a results block: (its text now, its text regenerated)."""
    found = {}
    for page in pages():
        text = page.read_text(encoding="utf-8")
        if BLOCK.search(text):
            found[page] = (text, render(text, page))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the pages whose tables differ")
    args = parser.parse_args()
    stale = 0
    for page, (old, new) in regenerated().items():
        if old == new:
            continue
        stale += 1
        name = str(page.relative_to(ROOT))
        if args.write:
            page.write_text(new, encoding="utf-8")
            print(f"wrote {name}")
        else:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, name))
    if stale and not args.write:
        print(f"{stale} page(s) differ from benchmarks/results: python docs/results_tables.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
