"""Prediction beside a peer: timm's way of running resnet18 on a folder of photos against ``perspective infer``
(a benchmark).

    pip install timm==1.0.31              # the peer; not a dependency of the toolkit, nor installed by .ci/run
    python benchmarks/bench_peers.py      # about 8 minutes on 2 CPU cores

Both run resnet18 at 224 px with random weights (the compute of a trained model) on the same generated
640x480 JPEGs (``bench_infer.make_images``), each as a process of its own, timed whole; the figure is
the marginal images/s between a small and a large folder (the extra images over the extra seconds), so
imports and model loading are left out, the best of ``--repeats`` runs of each size.

- **timm, best CPU flags**: what timm's ``inference.py`` does with ``--channels-last --amp --amp-dtype
  bfloat16 -j 2 -b 32`` (bf16 autocast where the CPU has it): ``timm.create_model``, its
  ``resolve_data_config`` (resize 256, centre crop 224), ``ImageDataset`` and ``create_loader`` with 2
  workers, top-5 of each output;
- **timm, defaults**: the same with ``inference.py``'s defaults (fp32, batch 256, 2 workers);
- **perspective infer**: its defaults (``--runtime auto``: OpenVINO on a CPU), ``--runtime torch``, and
  ``-c model_int8.xml`` (``perspective export --int8``).

Where the time goes: for each perspective path, the model alone on random batches (``bench_infer``'s
(b)) and the decoding alone on the same cores (the prediction path's loader without the model); taking
turns on the same cores, they allow ``1 / (1/model + 1/decode)`` images/s: the ceiling end to end is
compared with.

Rows (``benchmarks/results/peers.jsonl``): case ``tool`` (timm, perspective), ``setting``, ``path``
(``infer``, ``model``, ``decode``), ``images`` (the two folder sizes); figures ``images_per_s`` and on
perspective's infer rows ``ratio_to_timm_best``, ``ceiling`` and ``share_of_ceiling``.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmarks import store  # noqa: E402

BENCHMARK = "peers"
SIZES = (300, 1500)
TIMM_SETTINGS = {"best CPU flags": {"channels_last": True, "bf16": True, "batch": 32, "workers": 2},
                 "defaults": {"channels_last": False, "bf16": False, "batch": 256, "workers": 2}}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench_peers.py")
    p.add_argument("--repeats", type=int, default=2, help="runs of each folder size, the best kept (default 2)")
    p.add_argument("--workdir", default=None, help="keep the photos here (default: a temporary folder)")
    p.add_argument("--results", default=None, help="results file (default: benchmarks/results/peers.jsonl)")
    p.add_argument("--timm-run", nargs=2, metavar=("FOLDER", "SETTING"), help=argparse.SUPPRESS)
    return p


def timm_run(folder: str, setting: str) -> None:
    """One timm pass over ``folder``, as its inference.py runs (called in a process of its own)."""
    import torch
    from timm import create_model
    from timm.data import ImageDataset, create_loader, resolve_data_config

    flags = TIMM_SETTINGS[setting]
    model = create_model("resnet18", pretrained=False).eval()
    config = resolve_data_config({}, model=model)
    if flags["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    loader = create_loader(ImageDataset(folder), input_size=config["input_size"], batch_size=flags["batch"],
                           use_prefetcher=False, interpolation=config["interpolation"], mean=config["mean"],
                           std=config["std"], num_workers=flags["workers"], crop_pct=config["crop_pct"],
                           device=torch.device("cpu"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=flags["bf16"])
    found = 0
    with torch.inference_mode(), autocast:
        for images, _ in loader:
            if flags["channels_last"]:
                images = images.contiguous(memory_format=torch.channels_last)
            found += model(images).topk(5).indices.shape[0]
    print(found)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def marginal(commands: dict[int, list[str]], repeats: int) -> float:
    """Extra images over extra seconds between the two folder sizes, the best run of each."""
    small, large = SIZES
    timed(commands[small])  # warm the file cache (and a first conversion)
    best = {size: min(timed(commands[size]) for _ in range(repeats)) for size in SIZES}
    return (large - small) / max(best[large] - best[small], 1e-9)


def decode_rate(checkpoint: Path, folder: Path) -> float:
    """Images/s of the prediction path's decoding alone (its loader, every core, no model)."""
    from perspective.data.datasets import ImageFileDataset, InTurnLoader
    from perspective.models import load_checkpoint
    from perspective.models.backbones import Preprocessing
    from perspective.models.transforms import eval_resize

    pre = Preprocessing.from_dict(load_checkpoint(checkpoint).hparams.preprocessing)
    paths = sorted(str(p) for p in folder.iterdir())
    dataset = ImageFileDataset(paths, eval_resize(pre), pre.image_size, pre.decode_size)
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        count = sum(len(indices) for _, indices, _ in InTurnLoader(dataset, 32, 2))
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> int:
    args = get_args_parser().parse_args()
    if args.timm_run:
        timm_run(*args.timm_run)
        return 0
    from bench_infer import make_checkpoint, make_images, model_alone, subset

    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="bench_peers_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {store.hardware(store.machine())}", flush=True)
    paths = make_images(work / "pool", max(SIZES))
    folders = {size: subset(paths, work / f"photos{size}", size) for size in SIZES}

    def record(case: dict, figures: dict, precision: str | None) -> None:
        store.record(BENCHMARK, {**case, "images": list(SIZES)}, {k: round(v, 4) for k, v in figures.items()},
                     precision=precision, path=args.results)

    rates = {}
    for setting, flags in TIMM_SETTINGS.items():
        commands = {size: [sys.executable, str(Path(__file__).resolve()), "--timm-run", str(folder), setting]
                    for size, folder in folders.items()}
        rates[setting] = marginal(commands, args.repeats)
        record({"tool": "timm", "setting": setting, "path": "infer"}, {"images_per_s": rates[setting]},
               "bf16-mixed" if flags["bf16"] else "32")
        print(f"timm ({setting}): {rates[setting]:.1f} images/s", flush=True)

    checkpoint = make_checkpoint(work / "resnet18.ckpt", "resnet18", 224)
    int8 = work / "resnet18_int8.xml"
    if not int8.is_file():
        subprocess.run([sys.executable, "-m", "perspective", "export", "-c", str(checkpoint), "--format", "openvino",
                        "--int8", "--calibration", str(folders[SIZES[1]]), "--max-drop", "1", "-o", str(int8), "-q"],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    decode = decode_rate(checkpoint, folders[SIZES[0]])
    record({"tool": "perspective", "setting": "decoding", "path": "decode"}, {"images_per_s": decode}, None)
    from perspective.models import load_checkpoint
    from perspective.prediction.converted import predicting_model

    twin = predicting_model("auto", checkpoint, load_checkpoint(checkpoint), "cpu")
    for setting, model_file, extra in (("defaults", checkpoint, ()), ("--runtime torch", checkpoint, ("--runtime", "torch")),
                                       ("int8 export", int8, ())):
        commands = {size: [sys.executable, "-m", "perspective", "infer", "-d", str(folder), "-c", str(model_file), "-o",
                           str(work / "out.csv"), "-q", "--show", "0", *extra] for size, folder in folders.items()}
        rate = marginal(commands, args.repeats)
        runs_twin = setting == "defaults" and not getattr(twin, "runs_in_torch", True)
        alone, precision = model_alone(_twin_file(checkpoint) if runs_twin else Path(model_file))
        ceiling = 1.0 / (1.0 / alone + 1.0 / decode)
        record({"tool": "perspective", "setting": setting, "path": "model"}, {"images_per_s": alone}, precision)
        record({"tool": "perspective", "setting": setting, "path": "infer"},
               {"images_per_s": rate, "ratio_to_timm_best": rate / rates["best CPU flags"], "ceiling": ceiling,
                "share_of_ceiling": rate / ceiling}, precision)
        print(f"perspective infer ({setting}): {rate:.1f} images/s, {rate / rates['best CPU flags']:.2f}x timm's best; "
              f"model alone {alone:.1f}, decoding {decode:.1f}, ceiling {ceiling:.1f} ({rate / ceiling:.2f} of it)",
              flush=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _twin_file(checkpoint: Path) -> Path:
    """The cached OpenVINO model that ``--runtime auto`` runs for ``checkpoint``."""
    from perspective.prediction.converted import FILES, cache_folder

    return cache_folder(checkpoint, "openvino") / FILES["openvino"][0]


if __name__ == "__main__":
    sys.exit(main())
