"""What it costs to turn a 640x480 JPEG into the model's 224 px uint8 input, step by step (a benchmark).

    python benchmarks/bench_decode.py                 # 200 generated photo-like JPEGs, best of 5

Each candidate runs over the same files in one thread; the figure is milliseconds of one core per
image (the best of ``--repeats`` passes, the candidates taking turns, so a moment of noise does
not count). The candidates:

- ``decode full``: ``Image.open`` + ``load``, no draft: the decoder alone at full size;
- ``decode draft``: the same at the DCT scale the prediction path asks for (``draft``);
- ``prediction path``: ``load_resized`` with ``eval_resize``, what ``perspective infer`` does per image;
- ``without copies``: the same steps without the copies the path makes on the way (EXIF transpose
  when there is no orientation tag, converting an image that is RGB already);
- ``PIL resize direct``: ``Image.resize`` with the same filter instead of torchvision's ``v2.Resize``
  (identical pixels; the wrapper's dispatch cost);
- ``reducing_gap 2``: PIL's two-step resize (a box reduction by an integer factor, then the filter):
  faster, but the pixels differ slightly; the largest difference is printed.

The last column compares each result with the prediction path's pixels, so a faster candidate that
changes what the model sees says so. It needs no data: the JPEGs are generated in a temporary folder
(``bench_infer.make_images``).

One row per candidate is appended to ``benchmarks/results/decode.jsonl`` (``--results`` redirects
it). Case keys: ``candidate``, ``images``, ``image_size``. Figures: ``ms_per_image`` (the best pass)
and ``max_pixel_diff`` (against the prediction path; absent for the decode-only candidates).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from benchmarks.bench_infer import make_images  # noqa: E402  (photo-like JPEGs, as bench_infer.py times)
from perspective.cli import ArgumentParser, positive_int  # noqa: E402

BENCHMARK = "decode"


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_decode.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=200, help="generated JPEGs (default 200)")
    p.add_argument("--image-size", type=positive_int, default=224, help="model input size (default 224)")
    p.add_argument("--repeats", type=positive_int, default=5, help="passes over the files; the best counts (default 5)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def candidates(size: int):
    from PIL import Image

    from perspective.data.images import load_image, load_resized
    from perspective.models.backbones import default_preprocessing
    from perspective.models.transforms import eval_resize

    pre = default_preprocessing("resnet18", size, "full")
    resize = eval_resize(pre)
    draft = pre.decode_size

    def decode_full(path):
        with Image.open(path) as img:
            img.load()
            return None

    def decode_draft(path):
        with Image.open(path) as img:
            img.draft(None, (draft, draft))
            img.load()
            return None

    def prediction_path(path):
        return load_resized(path, resize, draft)

    def without_copies(path):
        with Image.open(path) as img:
            img.draft(None, (draft, draft))
            img.load()
            if img.getexif().get(0x0112, 1) != 1 or img.mode != "RGB":
                img = load_image(path, draft)  # the general path for the rare file that needs it
            return np.asarray(resize(img))

    def pil_direct(path):
        img = load_image(path, draft)
        return np.asarray(img.resize((size, size), Image.BILINEAR))

    def reducing_gap(path):
        img = load_image(path, draft)
        return np.asarray(img.resize((size, size), Image.BILINEAR, reducing_gap=2.0))

    return {"decode full": decode_full, "decode draft": decode_draft, "prediction path": prediction_path,
            "without copies": without_copies, "PIL resize direct": pil_direct, "reducing_gap 2": reducing_gap}


def main() -> int:
    args = get_args_parser().parse_args()
    with tempfile.TemporaryDirectory() as work:
        paths = make_images(Path(work), args.images)
        reference = [np.asarray(candidates(args.image_size)["prediction path"](p)) for p in paths[:20]]
        print(f"{args.images} JPEGs of 640x480 -> {args.image_size} px, one thread, best of {args.repeats}")
        print(f"{'candidate':20s} {'ms/image':>9s} {'max |pixel diff|':>17s}")
        runs = candidates(args.image_size)
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(args.repeats):  # candidates take turns, so a slow spell of the machine falls on all
            for name, run in runs.items():
                start = time.perf_counter()
                for path in paths:
                    run(path)
                best[name] = min(best[name], (time.perf_counter() - start) / len(paths) * 1000)
        for name, run in runs.items():
            outputs = [run(p) for p in paths[:20]]
            figures = {"ms_per_image": round(best[name], 4)}
            if outputs[0] is not None:
                figures["max_pixel_diff"] = max(int(np.abs(np.asarray(o, dtype=np.int16) - r).max())
                                                for o, r in zip(outputs, reference))
            store.record(BENCHMARK, {"candidate": name, "images": args.images, "image_size": args.image_size}, figures,
                         path=args.results)
            print(f"{name:20s} {best[name]:9.3f} {figures.get('max_pixel_diff', '-'):>17}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
