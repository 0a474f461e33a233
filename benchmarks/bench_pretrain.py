"""Pretraining throughput: one ``perspective pretrain`` run on a benchmark pool, its images/s per epoch.

    python benchmarks/bench_pretrain.py --pool cars --flags="-e 100 --hflip-prob 0 -w 15"
    python benchmarks/bench_pretrain.py --pool fashion --flags="-e 11 -w 15" --workdir work
    bash benchmarks/pretrain_gpu.sh            # both pools on a GPU machine, Fashion's epochs from a time budget

The pools are ``bench_recipe.py``'s: ``cars``, 3,000 unlabelled synthetic car photos (320x240 JPEG,
rendered here), and ``fashion``, the 59,500 unlabelled Fashion-MNIST photos (28x28 PNG, from Debian's
``dataset-fashion-mnist``: ``apt-get install dataset-fashion-mnist``). They are made in a temporary
folder, or in ``--workdir`` where they are kept for the next run (``--limit N`` keeps the first N
photos, for a short trial). The run is ``perspective pretrain -d POOL --image-size 64`` with
``--flags``, its backbone written to ``--output``.

One row is appended to ``benchmarks/results/pretrain.jsonl`` when the run ends (``--results``
redirects it), with pretrain's ``--seed`` as the row's ``seed``. Case keys: ``pool``, ``images``
(photos in the pool), ``backbone``, ``method``, ``image_size``, ``batch_size``, ``epochs``,
``hflip_prob``, ``blur_prob`` (null: the method's own), ``workers`` (null: pretrain's default);
``precision`` is the Lightning precision of the run. Figures:
``images_per_s`` (the median of the epochs' log lines), ``images_per_s_min`` and
``images_per_s_max`` (their range), ``epochs_logged``, ``fit_seconds`` (pretrain's own count, the
fit alone) and ``wall_seconds`` (the command, start-up and the output file included).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from benchmarks.bench_recipe import IMAGE_SIZE, make_cars, make_fashion  # noqa: E402
from perspective.cli import ArgumentParser, positive_int  # noqa: E402

BENCHMARK = "pretrain"
POOLS = {"cars": make_cars, "fashion": make_fashion}
EPOCH_LINE = re.compile(r"epoch \d+/\d+: .*?([\d.]+) images/s")
FIT_LINE = re.compile(r"pretrained on \d+ images .* in (\d+) s")


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_pretrain.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", choices=tuple(POOLS), required=True, help="which unlabelled pool to pretrain on")
    p.add_argument("--flags", default="", help="perspective pretrain flags, quoted as one argument (default none)")
    p.add_argument("--image-size", type=positive_int, default=IMAGE_SIZE,
                   help=f"pretrain's --image-size, bench_recipe.py's (default {IMAGE_SIZE})")
    p.add_argument("--limit", type=positive_int, default=None, help="keep only the pool's first N photos (default all)")
    p.add_argument("--workdir", default=None, help="make and keep the pools here (default: a temporary folder)")
    p.add_argument("-o", "--output", default=None, help="the backbone file (default: POOL.ckpt in the work folder)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the row to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def pool_folder(name: str, work: Path, limit: int | None) -> Path:
    """The pool's folder, made when missing; with ``limit`` a folder of hard links to its first photos."""
    pool = POOLS[name](work / "data" / name) / "pool"
    if limit is None:
        return pool
    kept = work / "data" / f"{name}_{limit}"
    if not kept.is_dir():
        kept.mkdir(parents=True)
        for photo in sorted(pool.iterdir())[:limit]:
            os.link(photo, kept / photo.name)
    return kept


def run_pretrain(command: list[str]) -> tuple[list[str], float]:
    """Run ``command``, echoing its output as it comes; its output lines and wall seconds."""
    start = time.perf_counter()
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if proc.returncode != 0:
        raise SystemExit(f"bench_pretrain.py: perspective pretrain exited {proc.returncode}")
    return lines, time.perf_counter() - start


def run_precision(flags: argparse.Namespace) -> str:
    """The Lightning precision ``perspective pretrain`` runs in with these flags (its own rule)."""
    from perspective.config import lightning_precision
    from perspective.hardware import default_precision, resolve_devices

    accelerator, _ = resolve_devices(flags.gpus, flags.accelerator, flags.devices)
    return lightning_precision(flags.precision) or default_precision(accelerator)


def figures_of(lines: list[str], wall: float) -> dict:
    """images/s of each epoch's log line (median and range), the fit's seconds and the wall seconds."""
    rates = [float(m[1]) for line in lines if (m := EPOCH_LINE.search(line))]
    fit = next((float(m[1]) for line in lines if (m := FIT_LINE.search(line))), None)
    figures = {"epochs_logged": len(rates), "wall_seconds": round(wall, 1)}
    if rates:
        figures.update(images_per_s=statistics.median(rates), images_per_s_min=min(rates), images_per_s_max=max(rates))
    if fit is not None:
        figures["fit_seconds"] = fit
    return figures


def main() -> int:
    args = get_args_parser().parse_args()
    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    pool = pool_folder(args.pool, work, args.limit)
    output = Path(args.output).resolve() if args.output else work / f"{args.pool}.ckpt"
    pretrain = ["-d", str(pool), "-o", str(output), "--image-size", str(args.image_size), "-c",
                str(work / "ckpt" / args.pool), "--logs-location", str(work / "logs"), *shlex.split(args.flags)]
    from perspective.cli.pretrain import get_args_parser as pretrain_parser

    flags = pretrain_parser().parse_args(pretrain)
    precision = run_precision(flags)
    lines, wall = run_pretrain([sys.executable, "-m", "perspective", "pretrain", *pretrain])
    case = {"pool": args.pool, "images": len(os.listdir(pool)), "backbone": flags.backbone, "method": flags.method,
            "image_size": flags.image_size, "batch_size": flags.batch_size, "epochs": flags.max_epochs,
            "hflip_prob": flags.hflip_prob, "blur_prob": flags.blur_prob, "workers": flags.workers}
    figures = figures_of(lines, wall)
    store.record(BENCHMARK, case, figures, seed=flags.seed, precision=precision, path=args.results)
    print(f"{args.pool}: {case['images']} images, -e {flags.max_epochs}, {precision}: "
          f"{figures.get('images_per_s', float('nan')):.0f} images/s (epochs {figures.get('images_per_s_min', 0):.0f} - "
          f"{figures.get('images_per_s_max', 0):.0f}), fit {figures.get('fit_seconds', float('nan')):.0f} s, "
          f"wall {wall:.0f} s")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
