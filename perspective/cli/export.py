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

import sys
from collections.abc import Sequence

from ..config import ExportConfig
from ..config.flags import HARDWARE
from ..config.tools import INT8
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("Export a checkpoint to ONNX, TorchScript or OpenVINO (fp32 or int8), checked before it is kept. "
               "Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective export") -> CommandParser:
    return command_parser(prog, ExportConfig, groups=(INT8, HARDWARE), description=DESCRIPTION,
                          epilog="Guide and measured effects of int8: docs/export.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective export") -> int:
    parser = get_args_parser(prog)
    cfg = parser.parse_config(argv)
    if cfg.int8 and cfg.format != "openvino":
        parser.error("--int8 needs --format openvino")
    if cfg.int8 and not cfg.calibration:
        parser.error("--int8 needs --calibration DIR (a few hundred images like the ones the model will see)")
    if not cfg.int8 and (cfg.calibration or cfg.check):
        parser.error("--calibration and --check go with --int8")
    setup_logging(cfg.quiet)
    from perspective.export import Int8Refused, export, export_int8
    from perspective.models import checkpoint_path, load_checkpoint

    model = load_checkpoint(checkpoint_path(cfg.checkpoint))
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
