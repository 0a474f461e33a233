"""Prediction speed: the naive loop, the model alone, and ``perspective infer`` end to end (a benchmark, not a test).

    python benchmarks/bench_infer.py --memory-images 10000 --onnx   # resnet18, efficientnet_b0, mobilenet_v3_small
    python benchmarks/bench_infer.py -b resnet18 --images 2000 --memory-images 0 --ddp-devices 0 --list-paths 0 --openvino
    python benchmarks/bench_infer.py -b resnet18 --images 192 --naive-images 16 --memory-images 0

It needs no data: it generates its images (640x480 JPEGs, synthetic cars with sensor-like noise,
quality 90) in a temporary folder, or in ``--workdir`` where they are kept for the next run. For each
backbone (random weights, 224 px, 8 regression outputs: the compute of a trained model):

(a) naive: the usual loop, PIL per image, the eval transform, fp32, batch 1, ``torch.no_grad``;
(b) model: the model alone on random tensors through ``Predictor.predict_tensor`` at its default
    precision (bf16 where the CPU has it), batch 32, best of 3: what the hardware allows;
(c) infer: the command in PyTorch (``--runtime torch``), marginal throughput = extra images / extra
    seconds between a small and a large folder (median of 3 runs each), so start-up (imports, model
    load) is excluded; and with infer's defaults (``--runtime auto``: the checkpoint's OpenVINO twin on a
    CPU, converted by the warm-up run and cached), case key ``runtime_flag: auto``;
(d) ``--onnx``: ``perspective infer -c model.onnx`` (onnxruntime) measured like (c). ``--openvino``:
    resnet18 exported to OpenVINO (fp32 weights, run in bf16 where the CPU has it) and to int8 (NNCF,
    calibrated on 300 of the small folder's photos; random weights, so the accuracy check is waived
    with ``--max-drop 1``: the shipped model's int8 accuracy is measured in trained_models/README.md),
    each as (b) and (c);
(e) several processes: ``perspective infer`` in ``--ddp-devices`` processes (``--accelerator cpu
    --strategy ddp``, or GPUs with ``--ddp-accelerator gpu``) on the large folder, timed whole against
    one process on the same folder, fp32, and whether both wrote the same rows;
(f) peak memory: the largest resident set of ``perspective infer``'s processes on N/10 and N
    (``--memory-images``) images, flat when results are streamed; and on a ``--list`` of
    ``--list-paths`` paths, of which ``--list-sample`` are real images and the others missing files
    that each get an error row (the listing, the part file and the merge of that many rows).

Each measurement is appended as it finishes to ``benchmarks/results/infer.jsonl`` (``--results``
redirects it), one row per backbone and path. Case keys: ``backbone``, ``image_size``, ``runtime``
(torch, onnxruntime, openvino), ``weights`` (fp32, int8), ``path`` (``naive``, ``model``, ``infer``,
``infer whole run``, ``infer --list``), and per path ``images`` (naive, infer: the large folder;
infer whole run), ``batch`` (model), ``processes`` with ``accelerator`` and ``strategy`` for
several (infer whole run), ``paths`` and ``real_images`` (infer --list). The arithmetic is the
row's ``precision``. Figures: ``images_per_s``; on infer rows ``ratio_to_naive`` and
``ratio_to_model`` (c/a and c/b of the same run), on OpenVINO infer rows ``ratio_to_torch`` (against
the PyTorch infer row of the same run); on whole runs ``seconds`` and ``peak_rss_mib``, and for
several processes ``same_rows_as_one_process`` (1 or 0) and ``largest_difference``.
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

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402

BENCHMARK = "infer"
MODEL_BATCH = 32  # (b)'s batch
SMALL_FOLDER = 32  # (c)'s small folder holds a sixth of --images, at least this many

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
    p.add_argument("--memory-images", type=non_negative_int, default=10000,
                   help="folder size for the peak-memory rows, 0 to skip (default 10000)")
    p.add_argument("--onnx", action="store_true", help="also measure infer -c model.onnx (needs onnxruntime)")
    p.add_argument("--openvino", action="store_true",
                   help="also measure OpenVINO fp32 and int8 exports of resnet18 (needs perspective[openvino])")
    p.add_argument("--ddp-devices", type=non_negative_int, default=2,
                   help="processes for the several-processes rows, 0 to skip (default 2)")
    p.add_argument("--ddp-accelerator", default="cpu", help="accelerator of the several processes (default cpu)")
    p.add_argument("--list-paths", type=non_negative_int, default=1_000_000,
                   help="paths in the --list rows, 0 to skip (default 1000000)")
    p.add_argument("--list-sample", type=positive_int, default=200,
                   help="of them, real images predicted (default 200)")
    p.add_argument("--workdir", default=None, help="keep generated data here (default: a temporary folder)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def model_case(args, backbone: str, runtime: str = "torch", weights: str = "fp32") -> dict:
    """The case keys every row of one model shares."""
    return {"backbone": backbone, "image_size": args.image_size, "runtime": runtime, "weights": weights}


def save(args, case: dict, figures: dict, precision: str | None) -> None:
    """One row of this benchmark, appended now, so a stopped run keeps what it measured."""
    store.record(BENCHMARK, case, {k: round(v, 4) for k, v in figures.items()}, precision=precision, path=args.results)


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


def model_alone(checkpoint: Path, batch: int = MODEL_BATCH, batches: int = 8, repeats: int = 3) -> tuple[float, str]:
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
    """Seconds and peak RSS in KiB (largest process) of one ``perspective infer`` run, measured in a wrapper."""
    source = ["-d", str(folder)] if folder is not None else []
    command = [sys.executable, "-m", "perspective", "infer", *source, "-c", str(checkpoint),
               "-o", str(out), "-q", "--show", "0", *extra]
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True,
                            cwd=ROOT)
    seconds, rss, code = result.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"perspective infer exited {code}: {' '.join(command)}")
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
    parser = get_args_parser()
    args = parser.parse_args()
    if args.images <= SMALL_FOLDER:
        parser.error(f"--images must be more than {SMALL_FOLDER}, the small folder's least size")
    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="bench_infer_"))
    import torch

    print(f"machine: {store.hardware(store.machine())}, torch {torch.__version__}", flush=True)
    paths = make_images(work / "pool", max(args.images, args.naive_images))
    small = subset(paths, work / "small", max(SMALL_FOLDER, args.images // 6))
    large = subset(paths, work / "large", args.images)
    backbones = args.backbones.split(",")
    rows, precisions = [], {}
    for backbone in backbones:
        checkpoint = make_checkpoint(work / f"{backbone}.ckpt", backbone, args.image_size)
        case = model_case(args, backbone)
        naive = naive_loop(checkpoint, paths[: args.naive_images])
        save(args, {**case, "path": "naive", "images": args.naive_images}, {"images_per_s": naive}, "32")
        alone, precision = model_alone(checkpoint)
        precisions[backbone] = precision
        save(args, {**case, "path": "model", "batch": MODEL_BATCH}, {"images_per_s": alone}, precision)
        e2e = marginal(checkpoint, small, large, work / "out.csv", "--runtime", "torch")
        save(args, {**case, "path": "infer", "images": args.images},
             {"images_per_s": e2e, "ratio_to_naive": e2e / naive, "ratio_to_model": e2e / alone}, precision)
        rows.append((backbone, precision, naive, alone, e2e))
        print(f"{backbone}: (a) {naive:.1f}  (b) {alone:.1f}  (c) {e2e:.1f} images/s", flush=True)
        rows.append(default_row(args, backbone, checkpoint, small, large, work, naive, e2e))
        if args.onnx and backbone == "resnet18":
            rows.append(onnx_row(args, checkpoint, small, large, work))
        if args.openvino and backbone == "resnet18":
            rows += openvino_rows(args, checkpoint, small, large, work, e2e)
    print(f"\n{args.image_size} px, {args.images} images of 640x480 for (c); batch {MODEL_BATCH}, default workers")
    print(f"{'backbone':32s} {'precision':>9s} {'(a) naive':>10s} {'(b) model':>10s} {'(c) infer':>10s} "
          f"{'c/a':>6s} {'c/b':>6s}")
    for name, precision, naive, alone, e2e in rows:
        print(f"{name:32s} {precision:>9s} {naive:10.1f} {alone:10.1f} {e2e:10.1f} {e2e / naive:6.2f} {e2e / alone:6.2f}")
    checkpoint = work / f"{backbones[0]}.ckpt"
    if args.memory_images:
        memory_rows(args, checkpoint, backbones[0], precisions[backbones[0]], paths, work)
    if args.ddp_devices:
        ddp_rows(args, checkpoint, backbones[0], large, work)
    if args.list_paths:
        list_rows(args, checkpoint, backbones[0], precisions[backbones[0]], paths, work)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def onnx_row(args, checkpoint: Path, small: Path, large: Path, work: Path) -> tuple:
    """(c) for ``perspective infer -c model.onnx``: the checkpoint exported and run by onnxruntime."""
    onnx = work / "resnet18.onnx"
    subprocess.run([sys.executable, "-m", "perspective", "export", "-c", str(checkpoint), "--format", "onnx",
                    "-o", str(onnx), "-q"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    e2e = marginal(onnx, small, large, work / "out.csv")
    save(args, {**model_case(args, "resnet18", "onnxruntime"), "path": "infer", "images": args.images},
         {"images_per_s": e2e}, "32")
    print(f"resnet18 (onnxruntime): (c) {e2e:.1f} images/s", flush=True)
    return "resnet18 (onnxruntime)", "32", float("nan"), float("nan"), e2e


def default_row(args, backbone: str, checkpoint: Path, small: Path, large: Path, work: Path, naive: float,
                torch_e2e: float) -> tuple:
    """(c) with infer's defaults (``--runtime auto``: the checkpoint's OpenVINO twin on a CPU, converted on the
    first run and cached), against the same checkpoint in PyTorch."""
    e2e = marginal(checkpoint, small, large, work / "out.csv")
    from perspective.models import load_checkpoint
    from perspective.prediction.converted import predicting_model

    running = predicting_model("auto", checkpoint, load_checkpoint(checkpoint), "cpu")
    runtime = "torch" if getattr(running, "runs_in_torch", True) else "openvino"
    precision = getattr(running, "precision", "auto")
    save(args, {**model_case(args, backbone, runtime), "path": "infer", "images": args.images, "runtime_flag": "auto"},
         {"images_per_s": e2e, "ratio_to_naive": e2e / naive, "ratio_to_torch": e2e / torch_e2e}, precision)
    print(f"{backbone} (infer's defaults: {runtime}): (c) {e2e:.1f} images/s, {e2e / torch_e2e:.2f}x --runtime torch",
          flush=True)
    return f"{backbone} (defaults: {runtime})", precision, naive, float("nan"), e2e


def openvino_rows(args, checkpoint: Path, small: Path, large: Path, work: Path, torch_e2e: float) -> list[tuple]:
    """(b) and (c) for the OpenVINO fp32 and int8 exports of ``checkpoint``, (c) against PyTorch's ``torch_e2e``."""
    rows = []
    fp32, int8 = work / "resnet18_fp32.xml", work / "resnet18_int8.xml"
    export = [sys.executable, "-m", "perspective", "export", "-c", str(checkpoint), "--format", "openvino", "-q"]
    subprocess.run([*export, "-o", str(fp32)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    subprocess.run([*export, "--int8", "--calibration", str(small), "--max-drop", "1", "-o", str(int8)], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    for weights, path in (("fp32", fp32), ("int8", int8)):
        case = model_case(args, "resnet18", "openvino", weights)
        alone, precision = model_alone(path)
        save(args, {**case, "path": "model", "batch": MODEL_BATCH}, {"images_per_s": alone}, precision)
        e2e = marginal(path, small, large, work / "out.csv")
        save(args, {**case, "path": "infer", "images": args.images},
             {"images_per_s": e2e, "ratio_to_model": e2e / alone, "ratio_to_torch": e2e / torch_e2e}, precision)
        print(f"resnet18 (OpenVINO {weights}): (b) {alone:.1f}  (c) {e2e:.1f} images/s, "
              f"{e2e / torch_e2e:.2f}x PyTorch's (c)", flush=True)
        rows.append((f"resnet18 (OpenVINO {weights})", precision, float("nan"), alone, e2e))
    return rows


def memory_rows(args, checkpoint: Path, backbone: str, precision: str, paths: list[Path], work: Path) -> None:
    """(f): peak memory of whole runs on a tenth of ``--memory-images`` and on all of them."""
    print()
    for count in (max(1, args.memory_images // 10), args.memory_images):
        folder = subset(paths, work / f"memory_{count}", count)
        seconds, rss = run_infer(checkpoint, folder, work / "out.csv")
        save(args, {**model_case(args, backbone), "path": "infer whole run", "images": count, "processes": 1},
             {"seconds": seconds, "peak_rss_mib": rss / 1024}, precision)
        print(f"peak memory of perspective infer on {count} images: {rss / 1024:.0f} MiB ({seconds:.0f} s)", flush=True)


def ddp_rows(args, checkpoint: Path, backbone: str, folder: Path, work: Path) -> None:
    """(e): one process against ``--ddp-devices`` processes on the same folder, timed whole, and their rows compared."""
    import pandas as pd

    count = len(list(folder.iterdir()))
    case = {**model_case(args, backbone), "path": "infer whole run", "images": count}
    one, one_rss = run_infer(checkpoint, folder, work / "one.csv", "--precision", "32")
    save(args, {**case, "processes": 1}, {"seconds": one, "images_per_s": count / one, "peak_rss_mib": one_rss / 1024},
         "32")
    many, rss = run_infer(checkpoint, folder, work / "ddp.csv", "--precision", "32", "--accelerator",
                          args.ddp_accelerator, "--devices", str(args.ddp_devices), "--strategy", "ddp", "-w", "0")
    a, b = pd.read_csv(work / "one.csv"), pd.read_csv(work / "ddp.csv")
    same_rows = list(a["path"]) == list(b["path"])
    numbers = a.select_dtypes("number").columns
    largest = float((a[numbers] - b[numbers]).abs().max().max()) if same_rows else float("nan")
    save(args, {**case, "processes": args.ddp_devices, "accelerator": args.ddp_accelerator, "strategy": "ddp"},
         {"seconds": many, "images_per_s": count / many, "peak_rss_mib": rss / 1024,
          "same_rows_as_one_process": float(same_rows), "largest_difference": largest}, "32")
    print(f"\n(e) perspective infer on {count} images, fp32: one process {one:.1f} s ({count / one:.1f} images/s end "
          f"to end), {args.ddp_devices} processes ({args.ddp_accelerator}, ddp) {many:.1f} s ({count / many:.1f} "
          f"images/s); same rows in the same order: {same_rows}, largest difference {largest:.1e}; peak memory of "
          f"the largest process {rss / 1024:.0f} MiB")


def list_rows(args, checkpoint: Path, backbone: str, precision: str, paths: list[Path], work: Path) -> None:
    """(f): peak memory and time of ``--list`` with ``--list-paths`` paths (a sample real, the rest missing) and of the sample alone."""
    listing = work / "listing.txt"
    sample = [str(p) for p in paths[: args.list_sample]]
    with open(listing, "w") as file:
        for i in range(args.list_paths):
            file.write((sample[i] if i < len(sample) else f"{work}/missing/{i:07d}.jpg") + "\n")
    alone = work / "sample_list.txt"
    alone.write_text("\n".join(sample) + "\n")
    measured = []
    for count, path in ((len(sample), alone), (args.list_paths, listing)):
        seconds, rss = run_infer(checkpoint, None, work / "list.csv", "--list", str(path))
        save(args, {**model_case(args, backbone), "path": "infer --list", "paths": count, "real_images": len(sample)},
             {"seconds": seconds, "peak_rss_mib": rss / 1024}, precision)
        measured.append((seconds, rss))
    (base_seconds, base_rss), (seconds, rss) = measured
    print(f"\n--list of {args.list_paths:,} paths ({len(sample)} real images, the rest missing files with an "
          f"error row each): peak memory {rss / 1024:.0f} MiB in {seconds:.0f} s, against {base_rss / 1024:.0f} MiB "
          f"for the {len(sample)} real images alone ({base_seconds:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
