"""Does each target's Grad-CAM heatmap lie on its part? A check against the generator's part masks.

    python benchmarks/bench_saliency.py                     # the shipped model, 100 held-out images (seed 2002)
    python benchmarks/bench_saliency.py -c checkpoints/resnet18/<run>/last.ckpt --images 50

For each synthetic photo the generator knows which pixels show each car part (``synth.part_masks``).
For each target and each image where that part is visible (true score > 0), the heatmap of
``infer.py --explain`` is scaled to the photo and the share of its mass that falls on the part's
pixels is compared with the part's share of the photo's pixels (an image whose map is empty, nothing
in the layer raising that score, is counted apart): a heatmap that ignored the part would
put about the part's share of its mass there (lift 1); one that looks at the part, much more. The
share inside the whole car (every face the generator draws) is printed beside it.

It needs no data: the photos are rendered in memory (``perspective.synth.make_sample``). One row per
target is appended to ``benchmarks/results/saliency.jsonl`` (``--results`` redirects it), with the
data seed as the row's ``seed``. Case keys: ``model`` (``shipped`` or the checkpoint's file name),
``target``, ``images``. Figures: ``images_visible`` (images where the part is visible and the map is
not empty), ``empty_maps``, ``mass_on_part``, ``part_area``, ``lift``, ``mass_on_car``. Grad-CAM runs
in fp32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402

BENCHMARK = "saliency"


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_saliency.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--images", type=positive_int, default=100, help="held-out images (default 100)")
    p.add_argument("--seed", type=non_negative_int, default=2002,
                   help="synthetic data seed (default 2002, the held-out set)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def main() -> int:
    args = get_args_parser().parse_args()
    import torch
    from PIL import Image

    from perspective.evaluation.explain import Explainer, short_name
    from perspective.models import load_checkpoint, shipped_checkpoint
    from perspective.models.transforms import eval_resize, normalise_batch
    from perspective.synth import PARTS, make_sample, part_masks

    checkpoint = args.checkpoint or shipped_checkpoint()
    explainer = Explainer(load_checkpoint(checkpoint))
    names = explainer.names
    parts = [p for p in PARTS if f"perspective_score_{p}" in names]
    pre = explainer.preprocessing
    resize = eval_resize(pre)
    inside: dict[str, list[float]] = {p: [] for p in parts}
    area: dict[str, list[float]] = {p: [] for p in parts}
    on_car: dict[str, list[float]] = {p: [] for p in parts}
    empty = dict.fromkeys(parts, 0)
    for i in range(args.images):
        sample = make_sample(args.seed, i)
        masks = part_masks(sample.car, sample.camera)
        car = np.zeros_like(next(iter(masks.values())))
        for m in masks.values():
            car |= m
        picture = torch.from_numpy(np.array(resize(sample.image), dtype=np.uint8))
        _, maps, explained = explainer.maps(normalise_batch(picture[None], pre)[0])
        width, height = sample.image.size
        for j, heat in zip(explained, maps):
            part = short_name(names[j])
            if part not in inside or sample.scores[part] <= 0:
                continue
            scaled = np.asarray(Image.fromarray(heat).resize((width, height), Image.BILINEAR), dtype=np.float64)
            total = scaled.sum()
            if total <= 0:  # Grad-CAM found nothing in the layer that raises this output
                empty[part] += 1
                continue
            inside[part].append(float(scaled[masks[part]].sum() / total))
            area[part].append(float(masks[part].mean()))
            on_car[part].append(float(scaled[car].sum() / total))
    print(f"{checkpoint}: Grad-CAM mass on the part, {args.images} synthetic images of seed {args.seed}")
    print(f"{'target':16s} {'images':>6s} {'empty':>6s} {'mass on part':>12s} {'part area':>10s} {'lift':>6s} "
          f"{'mass on car':>12s}")
    model = Path(args.checkpoint).name if args.checkpoint else "shipped"
    for part in parts:
        if not inside[part]:
            continue
        share, part_area, car_share = float(np.mean(inside[part])), float(np.mean(area[part])), float(np.mean(on_car[part]))
        figures = {"images_visible": len(inside[part]), "empty_maps": empty[part], "mass_on_part": round(share, 4),
                   "part_area": round(part_area, 4), "lift": round(share / part_area, 4), "mass_on_car": round(car_share, 4)}
        store.record(BENCHMARK, {"model": model, "target": part, "images": args.images}, figures, seed=args.seed,
                     precision="32", path=args.results)
        print(f"{part:16s} {len(inside[part]):6d} {empty[part]:6d} {share:12.3f} {part_area:10.3f} {share / part_area:6.1f} "
              f"{car_share:12.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
