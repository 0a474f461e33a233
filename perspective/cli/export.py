"""Export a checkpoint to ONNX, TorchScript or OpenVINO (fp32 or int8), checked before it is kept.

    perspective export -c checkpoints/resnet18/<run>/last.ckpt --format onnx -o model.onnx
    perspective export -c checkpoints/resnet18/<run>/last.ckpt --format openvino -o model.xml            # fp32 weights (+ model.bin)
    perspective export -c checkpoints/resnet18/<run>/last.ckpt --format openvino --int8 --calibration photos/ -o model_int8.xml
    perspective infer -d ./photos -c model_int8.xml                           # same CSV columns

The exported model outputs what infer reports (scores, or class probabilities), any batch size;
targets or classes and the preprocessing are stored inside the file. An fp32 export is written only
if it agrees with the PyTorch model within --tolerance (max abs difference). An int8 export is
calibrated on up to 300 images of --calibration and written only if, on held-out images (the rest
of that folder, or --check), its scores keep a mean R² against the fp32 model's within --max-drop
of 1 (for classes: the share of images whose label agrees). Exit codes: 0 written, 2 usage error or
failed check (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..config import CALIBRATION_IMAGES, EXPORT_FORMATS, ExportConfig
from .common import (
    ArgumentParser,
    add_batch_flags,
    add_checkpoint_flag,
    add_config_flag,
    add_output_flag,
    add_quiet_flag,
    config_of,
    non_negative_float,
    positive_float,
    run,
    setup_logging,
)

D = ExportConfig  # every default is ExportConfig's


def get_args_parser(prog: str = "perspective export") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description="Export a checkpoint to ONNX, TorchScript or OpenVINO (fp32 or int8), "
                                              "checked before it is kept. Long flags also accept underscores.",
                       epilog="Guide and measured effects of int8: docs/export.md")
    add_config_flag(p)
    add_checkpoint_flag(p)
    p.add_argument("--format", choices=EXPORT_FORMATS, default=D.format, help=f"file format (default {D.format})")
    add_output_flag(p, D.output, "file to write (.onnx; .pt for TorchScript; .xml for OpenVINO, with its .bin beside it)")
    p.add_argument("--tolerance", type=positive_float, default=D.tolerance,
                   help=f"largest abs difference from PyTorch in fp32 (default {D.tolerance:g})")
    g = p.add_argument_group("int8 (OpenVINO; needs pip install 'perspective[openvino]')")
    g.add_argument("--int8", action="store_true",
                   help="post-training quantization with NNCF; needs --calibration")
    g.add_argument("--calibration", metavar="DIR",
                   help=f"images like the model will see: {CALIBRATION_IMAGES} calibrate, the rest check")
    g.add_argument("--check", metavar="DIR",
                   help="images for the check (default: --calibration's unused ones)")
    g.add_argument("--max-drop", type=non_negative_float, default=D.max_drop,
                   help="refuse int8 when its R² against fp32 (classes: agreement) is this far below 1 "
                        f"(default {D.max_drop:g})")
    add_batch_flags(g, D, workers_help="decoding threads (default: min(CPU count, 8))")
    add_quiet_flag(p, "no info logs")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective export") -> int:
    parser = get_args_parser(prog)
    args = parser.parse_args(argv)
    if args.int8 and args.format != "openvino":
        parser.error("--int8 needs --format openvino")
    if args.int8 and not args.calibration:
        parser.error("--int8 needs --calibration DIR (a few hundred images like the ones the model will see)")
    if not args.int8 and (args.calibration or args.check):
        parser.error("--calibration and --check go with --int8")
    setup_logging(args.quiet)
    from perspective.export import Int8Refused, export, export_int8
    from perspective.models import load_checkpoint, shipped_checkpoint

    cfg = config_of(ExportConfig, args)
    model = load_checkpoint(cfg.checkpoint or shipped_checkpoint())
    if cfg.int8:
        try:
            comparison = export_int8(model, cfg.output, cfg.calibration, cfg.check, cfg.max_drop,
                                     batch_size=cfg.batch_size, workers=cfg.workers)
        except Int8Refused as refused:
            print(refused.comparison.table(), file=sys.stderr)
            raise
        print(comparison.table())
        print(f"int8 OpenVINO model written to {cfg.output}; checked against fp32 on {comparison.images} "
              f"held-out images")
        return 0
    difference = export(model, cfg.output, cfg.format, cfg.tolerance)
    print(f"{cfg.format} model written to {cfg.output}; max abs difference from PyTorch (fp32): {difference:.2e}")
    return 0


if __name__ == "__main__":
    run(main, "perspective export")
