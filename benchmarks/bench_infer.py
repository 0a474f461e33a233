"""Prediction speed: the naive loop, the model alone, and infer.py end to end (a benchmark, not a test).

    python benchmarks/bench_infer.py                       # resnet18, efficientnet_b0, mobilenet_v3_small
    python benchmarks/bench_infer.py -b resnet18 --images 2000 --memory-images 0

For each backbone (random weights, 224 px, 8 regression outputs: the compute of a trained model):

(a) naive: the usual loop, PIL per image, the eval transform, fp32, batch 1, ``torch.no_grad``;
(b) model: the model alone on random tensors through ``Predictor.predict_tensor`` at its default
    precision (bf16 where the CPU has it), batch 32, best of 3: what the hardware allows;
(c) infer.py: the command as a user runs it, marginal throughput = extra images / extra seconds
    between a small and a large folder (median of 3 runs each), so start-up (imports, model load)
    is excluded;
(d) onnxruntime: infer.py with ``-c model.onnx`` (from export.py), measured like (c), when
    onnxruntime is installed. With ``--openvino``, resnet18 exported to OpenVINO (fp32 weights, run
    in bf16 where the CPU has it) and to int8 (NNCF, calibrated on 300 of the small folder's photos;
    random weights, so the accuracy check is waived with ``--max-drop 1``: the shipped model's int8
    accuracy is measured in trained_models/README.md), each as (b) and (c), and the int8 model's (c)
    against the PyTorch path's (c).

(e) DDP: infer.py in two processes (``--accelerator cpu --devices 2 --strategy ddp``, or ``--ddp-devices``
    GPUs with ``--ddp-accelerator gpu``) on the large folder, end to end, against one process on the
    same folder, and whether both wrote the same rows (on 2 CPU cores it need not be faster: the
    processes share the cores; it must be correct).

The images are generated 640x480 JPEGs (synthetic cars with sensor-like noise, quality 90). Peak
memory: infer.py's maximum resident set (the largest of its processes) on N and 10 N images: flat
when results are streamed; and on a ``--list`` of ``--list-paths`` paths (1,000,000 by default), of
which a sample of ``--list-sample`` are the real images and the others missing files, each of which
gets its error row: the listing, the part file and the merge of a million rows, at the cost of the
path strings. Goals on a 2-core CPU: (c) >= 3x (a) and (c) >= 0.7 x (b).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perspective.cli import ArgumentParser, positive_int  # noqa: E402

TARGETS = [f"perspective_score_{t}" for t in ("hood", "backdoor_left", "front_bumper", "rear", "roof",
                                               "frontdoor_left", "frontdoor_right", "backdoor_right")]


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-b", "--backbones", default="resnet18,efficientnet_b0,mobilenet_v3_small",
                   help="comma-separated backbones (default resnet18,efficientnet_b0,mobilenet_v3_small)")
    p.add_argument("--image-size", type=positive_int, default=224, help="input size (default 224)")
    p.add_argument("--images", type=positive_int, default=2000,
                   help="images in the large folder (default 2000; the small one has a sixth)")
    p.add_argument("--naive-images", type=positive_int, default=100, help="images for the naive loop (default 100)")
    p.add_argument("--memory-images", type=int, default=10000,
                   help="folder size for the peak-memory row, 0 to skip (default 10000)")
    p.add_argument("--onnx", action="store_true", help="also measure infer.py -c model.onnx (needs onnxruntime)")
    p.add_argument("--openvino", action="store_true",
                   help="also measure OpenVINO fp32 and int8 exports of resnet18 (needs perspective[openvino])")
    p.add_argument("--ddp-devices", type=int, default=2, help="processes for the DDP row, 0 to skip (default 2)")
    p.add_argument("--ddp-accelerator", default="cpu", help="accelerator of the DDP row (default cpu)")
    p.add_argument("--list-paths", type=int, default=1_000_000,
                   help="paths in the --list memory row, 0 to skip (default 1000000)")
    p.add_argument("--list-sample", type=positive_int, default=200,
                   help="of them, real images predicted (default 200)")
    p.add_argument("--workdir", default=None, help="keep generated data here (default: a temporary folder)")
    return p


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 640x480 JPEGs: synthetic cars plus noise, so they decode like photos."""
    from PIL import Image

    from perspective.synth import make_sample

    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) >= count:
        return existing[:count]
    rng = np.random.default_rng(0)
    for i in range(len(existing), count):
        pixels = np.asarray(make_sample(77, i, (640, 480)).image, dtype=np.float32)
        pixels += rng.normal(0, 12, pixels.shape)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    return sorted(folder.glob("*.jpg"))[:count]


def subset(paths: list[Path], folder: Path, count: int) -> Path:
    """A folder holding ``count`` of the images (hard links, repeating them when there are fewer)."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i in range(count):
        os.link(paths[i % len(paths)], folder / f"{i:05d}.jpg")
    return folder


def make_checkpoint(path: Path, backbone: str, image_size: int) -> Path:
    import torch

    from perspective.models import PerspectiveModel
    from perspective.models.backbones import default_preprocessing

    model = PerspectiveModel(backbone=backbone, weights="none", target_names=TARGETS,
                             preprocessing=default_preprocessing(backbone, image_size).to_dict())
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, path)
    return path


def naive_loop(checkpoint: Path, paths: list[Path]) -> float:
    """(a): images/s of PIL + transform + fp32 model, one image at a time."""
    import torch
    from PIL import Image

    from perspective.models import load_checkpoint
    from perspective.models.backbones import Preprocessing
    from perspective.models.transforms import eval_transform

    model = load_checkpoint(checkpoint)
    model = model.to(memory_format=torch.contiguous_format)
    transform = eval_transform(Preprocessing.from_dict(model.hparams.preprocessing))
    with torch.no_grad():
        for path in paths[:3]:  # warm-up
            model(transform(Image.open(path).convert("RGB"))[None])
        start = time.perf_counter()
        for path in paths:
            model(transform(Image.open(path).convert("RGB"))[None])
    return len(paths) / (time.perf_counter() - start)


def model_alone(checkpoint: Path, batch: int = 32, batches: int = 8, repeats: int = 3) -> tuple[float, str]:
    """(b): images/s of ``Predictor.predict_tensor`` on random tensors at the default precision.

    The best of ``repeats`` timings: the ceiling (c) is compared with should not be lowered by a
    moment of noise on a shared machine.
    """
    import torch

    from perspective.prediction import Predictor, load_model

    predictor = Predictor(load_model(checkpoint), device="cpu")
    size = predictor.preprocessing.image_size
    x = torch.randn(batch, 3, size, size)
    for _ in range(2):
        predictor.predict_tensor(x)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            predictor.predict_tensor(x)
        best = max(best, batch * batches / (time.perf_counter() - start))
    return best, predictor.precision


def run_infer(checkpoint: Path, folder: Path | None, out: Path, *extra: str) -> tuple[float, int]:
    """Seconds and peak RSS in KiB (largest process) of one infer.py run, measured in a wrapper."""
    source = ["-d", str(folder)] if folder is not None else []
    command = [sys.executable, str(ROOT / "infer.py"), *source, "-c", str(checkpoint),
               "-r", str(out), "-q", "--show", "0", *extra]
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True)
    seconds, rss, code = result.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"infer.py exited {code}: {' '.join(command)}")
    return float(seconds), int(rss)


def marginal(checkpoint: Path, small: Path, large: Path, out: Path, *extra: str, repeats: int = 3) -> float:
    """(c): extra images / extra seconds between the small and the large folder.

    Each folder is timed ``repeats`` times and the medians are compared: a difference of two single
    timings swings with one slow start-up.
    """
    n_small, n_large = len(list(small.iterdir())), len(list(large.iterdir()))
    run_infer(checkpoint, small, out, *extra)  # warm the file cache and the import cache
    t_small = statistics.median(run_infer(checkpoint, small, out, *extra)[0] for _ in range(repeats))
    t_large = statistics.median(run_infer(checkpoint, large, out, *extra)[0] for _ in range(repeats))
    return (n_large - n_small) / max(t_large - t_small, 1e-9)


def main() -> int:
    args = get_args_parser().parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_infer_"))
    import torch

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"native bf16: {torch.cpu._is_avx512_bf16_supported()}", flush=True)
    paths = make_images(work / "pool", max(args.images, args.naive_images))
    small = subset(paths, work / "small", max(32, args.images // 6))
    large = subset(paths, work / "large", args.images)
    rows = []
    for backbone in args.backbones.split(","):
        checkpoint = make_checkpoint(work / f"{backbone}.ckpt", backbone, args.image_size)
        naive = naive_loop(checkpoint, paths[: args.naive_images])
        alone, precision = model_alone(checkpoint)
        e2e = marginal(checkpoint, small, large, work / "out.csv")
        rows.append((backbone, precision, naive, alone, e2e))
        print(f"{backbone}: (a) {naive:.1f}  (b) {alone:.1f}  (c) {e2e:.1f} images/s", flush=True)
        if args.onnx and backbone == "resnet18":
            onnx = work / f"{backbone}.onnx"
            subprocess.run([sys.executable, str(ROOT / "export.py"), "-c", str(checkpoint), "--format", "onnx",
                            "-o", str(onnx), "-q"], check=True, stdout=subprocess.DEVNULL)
            ort = marginal(onnx, small, large, work / "out.csv")
            rows.append((f"{backbone} (onnxruntime)", "32", float("nan"), float("nan"), ort))
        if args.openvino and backbone == "resnet18":
            rows += openvino_rows(checkpoint, small, large, work)
            torch_e2e, int8_e2e = e2e, rows[-1][4]
    print(f"\n{args.image_size} px, {len(list(large.iterdir()))} images of 640x480 for (c); batch 32, default workers")
    print(f"{'backbone':32s} {'precision':>9s} {'(a) naive':>10s} {'(b) model':>10s} {'(c) infer.py':>13s} "
          f"{'c/a':>6s} {'c/b':>6s}")
    for backbone, precision, naive, alone, e2e in rows:
        print(f"{backbone:32s} {precision:>9s} {naive:10.1f} {alone:10.1f} {e2e:13.1f} {e2e / naive:6.2f} {e2e / alone:6.2f}")
    if args.openvino and "resnet18" in args.backbones.split(","):
        print(f"\ninfer.py end to end, resnet18: OpenVINO int8 {int8_e2e:.1f} images/s against PyTorch "
              f"{torch_e2e:.1f}: {int8_e2e / torch_e2e:.2f}x")
    if args.memory_images:
        checkpoint = work / f"{args.backbones.split(',')[0]}.ckpt"
        tenth = subset(paths, work / "mem_small", max(1, args.memory_images // 10))
        _, rss_small = run_infer(checkpoint, tenth, work / "out.csv")
        many = subset(paths, work / "mem_large", args.memory_images)
        seconds, rss_large = run_infer(checkpoint, many, work / "out.csv")
        print(f"\npeak memory of infer.py: {rss_small / 1024:.0f} MiB on {args.memory_images // 10} images, "
              f"{rss_large / 1024:.0f} MiB on {args.memory_images} images ({seconds:.0f} s)")
    checkpoint = work / f"{args.backbones.split(',')[0]}.ckpt"
    if args.ddp_devices:
        ddp_row(args, checkpoint, large, work)
    if args.list_paths:
        list_row(args, checkpoint, paths, work)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def openvino_rows(checkpoint: Path, small: Path, large: Path, work: Path) -> list[tuple]:
    """Rows (b) and (c) for the OpenVINO fp32 and int8 exports of ``checkpoint``."""
    rows = []
    fp32, int8 = work / "resnet18_fp32.xml", work / "resnet18_int8.xml"
    export = [sys.executable, str(ROOT / "export.py"), "-c", str(checkpoint), "--format", "openvino", "-q"]
    subprocess.run([*export, "-o", str(fp32)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*export, "--int8", "--calibration", str(small), "--max-drop", "1", "-o", str(int8)], check=True,
                   stdout=subprocess.DEVNULL)
    for name, path in (("OpenVINO fp32", fp32), ("OpenVINO int8", int8)):
        alone, precision = model_alone(path)
        e2e = marginal(path, small, large, work / "out.csv")
        print(f"resnet18 ({name}): (b) {alone:.1f}  (c) {e2e:.1f} images/s", flush=True)
        rows.append((f"resnet18 ({name})", precision, float("nan"), alone, e2e))
    return rows


def ddp_row(args, checkpoint: Path, folder: Path, work: Path) -> None:
    """(e): one process against ``--ddp-devices`` processes on the same folder, end to end, and their rows compared."""
    import pandas as pd

    count = len(list(folder.iterdir()))
    one, _ = run_infer(checkpoint, folder, work / "one.csv", "--precision", "32")
    many, rss = run_infer(checkpoint, folder, work / "ddp.csv", "--precision", "32", "--accelerator",
                          args.ddp_accelerator, "--devices", str(args.ddp_devices), "--strategy", "ddp", "-w", "0")
    a, b = pd.read_csv(work / "one.csv"), pd.read_csv(work / "ddp.csv")
    same_rows = list(a["path"]) == list(b["path"])
    numbers = a.select_dtypes("number").columns
    largest = float((a[numbers] - b[numbers]).abs().max().max()) if same_rows else float("nan")
    print(f"\n(e) infer.py on {count} images, fp32: one process {one:.1f} s ({count / one:.1f} images/s end to end), "
          f"{args.ddp_devices} processes ({args.ddp_accelerator}, ddp) {many:.1f} s ({count / many:.1f} images/s); "
          f"same rows in the same order: {same_rows}, largest difference {largest:.1e}; peak memory of the "
          f"largest process {rss / 1024:.0f} MiB")


def list_row(args, checkpoint: Path, paths: list[Path], work: Path) -> None:
    """Peak memory and time of ``--list`` with ``--list-paths`` paths: a sample of real images, the rest missing."""
    listing = work / "million.txt"
    sample = [str(p) for p in paths[: args.list_sample]]
    with open(listing, "w") as file:
        for i in range(args.list_paths):
            file.write((sample[i] if i < len(sample) else f"{work}/missing/{i:07d}.jpg") + "\n")
    small = work / "small_list.txt"
    small.write_text("\n".join(sample) + "\n")
    base_seconds, base_rss = run_infer(checkpoint, None, work / "list.csv", "--list", str(small))
    seconds, rss = run_infer(checkpoint, None, work / "list.csv", "--list", str(listing))
    print(f"\n--list of {args.list_paths:,} paths ({len(sample)} real images, the rest missing files with an "
          f"error row each): peak memory {rss / 1024:.0f} MiB in {seconds:.0f} s, against {base_rss / 1024:.0f} MiB "
          f"for the {len(sample)} real images alone ({base_seconds:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
