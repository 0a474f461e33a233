"""Training speed: ``perspective train`` against a plain PyTorch loop doing the same work (a benchmark, not a test).

    python benchmarks/bench_train.py                      # resnet18, 224 px, batch 32, 480 images
    python benchmarks/bench_train.py --image-size 160 --images 960

Both sides train the same model (random init) on the same synthetic images with the same batch
size, DataLoader workers, augmentation (none), AdamW, warm-up + cosine schedule and precision
(train's default: bf16-mixed where the CPU has bf16), channels_last, and validate on the same
5% each epoch. ``perspective train`` is measured by its marginal time: (3 epochs - 1 epoch), so
start-up, data reading and the first epoch's warm-up are excluded; the plain loop times epochs 2
and 3 after a first one. Lightning's overhead = 1 - train's images/s / the plain loop's.
``--timm`` adds a peer: timm's training loop (``timm_loop_seconds``, with its default augmentation)
beside ``perspective train`` with its own default augmentation (``--augment light``), both over full
epochs of the same photos.

It needs no data: it renders ``--images`` synthetic car photos (``perspective synth``, seed 5) in a
temporary folder, or in ``--workdir`` where they are kept for the next run. One row per side is
appended to ``benchmarks/results/train.jsonl`` (``--results`` redirects it). Case keys: ``side``
(``plain loop``, ``perspective train``), ``backbone``, ``image_size``, ``batch_size``, ``images``,
``workers`` (null: train's default); ``precision`` is the Lightning precision both used. Figures:
``images_per_s``, ``train_images_per_epoch``; on the train row also ``seconds_1_epoch``,
``seconds_3_epochs`` and ``lightning_overhead_percent``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402

BENCHMARK = "train"
VAL_FRACTION = 0.05


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_train.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-b", "--backbone", default="resnet18", help="(default resnet18)")
    p.add_argument("--image-size", type=positive_int, default=224, help="(default 224)")
    p.add_argument("--images", type=positive_int, default=480, help="synthetic images (default 480)")
    p.add_argument("-s", "--batch-size", type=positive_int, default=32, help="(default 32)")
    p.add_argument("-w", "--workers", type=non_negative_int, default=None, help="DataLoader workers (default: train's)")
    p.add_argument("--timm", action="store_true", help="also timm's training loop, beside perspective train with its "
                                                         "default augmentation (pip install timm==1.0.31)")
    p.add_argument("--workdir", default=None, help="keep data here (default: a temporary folder)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def train_seconds(args, data: Path, work: Path, epochs: int, augment: str = "none") -> float:
    """Wall seconds of one ``perspective train`` run of ``epochs`` epochs."""
    command = [sys.executable, "-m", "perspective", "train", "-b", args.backbone, "-d", str(data), "--weights", "none",
               "--image-size", str(args.image_size), "-s", str(args.batch_size), "-e", str(epochs),
               "--augment", augment, "--val-fraction", str(VAL_FRACTION), "--test-fraction", "0",
               "--patience", "100", "-c", str(work / "ckpt"), "--logs-location", str(work / "logs"), "-q"]
    if args.workers is not None:
        command += ["-w", str(args.workers)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def plain_loop_seconds(args, data: Path, epochs: int = 3) -> tuple[float, int, str]:
    """Seconds for epochs 2..``epochs`` of a hand-written loop; also train images per epoch and precision."""
    import pytorch_lightning as pl
    import torch

    from perspective.config import TrainConfig
    from perspective.data import default_workers
    from perspective.data.datasets import PerspectiveDataModule
    from perspective.hardware import default_precision
    from perspective.models.backbones import default_preprocessing
    from perspective.models.module import warmup_cosine
    from perspective.models.transforms import eval_transform
    from perspective.training import build_model, load_splits

    cfg = TrainConfig(backbone=args.backbone, data=str(data), weights="none", image_size=args.image_size,
                      batch_size=args.batch_size, augment="none", val_fraction=VAL_FRACTION, test_fraction=0,
                      workers=args.workers if args.workers is not None else default_workers())
    pl.seed_everything(cfg.seed, verbose=False)
    pre = default_preprocessing(cfg.backbone, cfg.image_size)
    data_, splits = load_splits(cfg)
    model = build_model(cfg, data_, splits[0], pre)
    loaders = PerspectiveDataModule(splits, data_.task, data_.names, eval_transform(pre), eval_transform(pre), None,
                                    cfg.batch_size, cfg.workers, pre.decode_size, pre.decode_size)
    train_loader, val_loader = loaders.train_dataloader(), loaders.val_dataloader()
    precision = default_precision("cpu")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    total = epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, len(train_loader), total))

    def epoch() -> None:
        model.train()
        for x, y in train_loader:
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = model.loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            for x, y in val_loader:
                model.loss_fn(model(x).float(), y)

    epoch()  # warm-up, as train's first epoch
    start = time.perf_counter()
    for _ in range(epochs - 1):
        epoch()
    images = len(train_loader) * cfg.batch_size
    return time.perf_counter() - start, images, precision


def timm_loop_seconds(args, data: Path, epochs: int = 3) -> tuple[float, int, str]:
    """Seconds for epochs 2..``epochs`` of timm's own training loop on the same photos: its ``create_model``, its
    ``create_loader`` with its default training augmentation (random resized crop, flip, colour jitter),
    AdamW, bf16 autocast where the CPU has it, channels_last; the photos' ``view`` column as 8 classes
    (timm's loop trains classes; the backbone's work is the same). No validation pass: timm's figure is
    the more flattering one."""
    import pandas as pd
    import torch
    from timm import create_model
    from timm.data import ImageDataset, create_loader, resolve_data_config

    from perspective.hardware import default_precision

    frame = pd.read_csv(data / "labels.csv")
    classes = data.parent / "timm_classes"
    if not classes.is_dir():
        for row in frame.itertuples():
            (classes / str(row.view)).mkdir(parents=True, exist_ok=True)
            (classes / str(row.view) / row.filename).hardlink_to(data / "images" / row.filename)
    dataset = ImageDataset(str(classes))
    model = create_model(args.backbone, pretrained=False, num_classes=len(set(frame["view"])))
    model = model.to(memory_format=torch.channels_last).train()
    config = resolve_data_config({"input_size": (3, args.image_size, args.image_size)}, model=model)
    workers = args.workers if args.workers is not None else 2
    loader = create_loader(dataset, input_size=config["input_size"], batch_size=args.batch_size, is_training=True,
                           use_prefetcher=False, num_workers=workers, device=torch.device("cpu"))
    precision = default_precision("cpu")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch() -> int:
        seen = 0
        for x, y in loader:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
        return seen

    epoch()
    start = time.perf_counter()
    seen = sum(epoch() for _ in range(epochs - 1))
    return time.perf_counter() - start, seen // (epochs - 1), precision


def save(args, side: str, figures: dict, precision: str) -> None:
    case = {"side": side, "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
            "images": args.images, "workers": args.workers}
    store.record(BENCHMARK, case, {k: round(v, 4) for k, v in figures.items()}, precision=precision, path=args.results)


def main() -> int:
    args = get_args_parser().parse_args()
    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="bench_train_"))
    data = work / "data"
    if not (data / "labels.csv").is_file():
        subprocess.run([sys.executable, "-m", "perspective", "synth", "-o", str(data), "-n", str(args.images),
                        "--seed", "5", "-q"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    plain_s, per_epoch, precision = plain_loop_seconds(args, data)
    plain = 2 * per_epoch / plain_s
    save(args, "plain loop", {"images_per_s": plain, "train_images_per_epoch": per_epoch}, precision)
    print(f"plain loop: {plain:.1f} images/s ({precision})", flush=True)
    one = train_seconds(args, data, work, 1)
    three = train_seconds(args, data, work, 3)
    lightning = 2 * per_epoch / (three - one)
    overhead = 100 * (1 - lightning / plain)
    save(args, "perspective train", {"images_per_s": lightning, "train_images_per_epoch": per_epoch,
                                     "seconds_1_epoch": one, "seconds_3_epochs": three,
                                     "lightning_overhead_percent": overhead}, precision)
    print(f"perspective train: {lightning:.1f} images/s (1 epoch {one:.1f} s, 3 epochs {three:.1f} s)", flush=True)
    if args.timm:
        timm_s, timm_epoch, timm_precision = timm_loop_seconds(args, data)
        timm = 2 * timm_epoch / timm_s
        save(args, "timm loop", {"images_per_s": timm, "train_images_per_epoch": timm_epoch}, timm_precision)
        print(f"timm's loop: {timm:.1f} images/s ({timm_epoch} photos an epoch, no validation)", flush=True)
        one = train_seconds(args, data, work, 1, "light")
        three = train_seconds(args, data, work, 3, "light")
        light = 2 * per_epoch / (three - one)
        save(args, "perspective train, default augmentation", {
            "images_per_s": light, "train_images_per_epoch": per_epoch, "seconds_1_epoch": one,
            "seconds_3_epochs": three, "ratio_to_timm": light / timm}, precision)
        print(f"perspective train (default augmentation): {light:.1f} images/s, {light / timm:.2f}x timm's loop",
              flush=True)
    print(f"\n{args.backbone} {args.image_size} px, batch {args.batch_size}, {per_epoch} training images per epoch, "
          f"{store.hardware(store.machine())}, {precision}")
    print(f"{'':17s} {'images/s':>9s}")
    print(f"{'plain loop':17s} {plain:9.1f}")
    print(f"{'perspective train':17s} {lightning:9.1f}")
    print(f"Lightning overhead: {overhead:.1f}%")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
