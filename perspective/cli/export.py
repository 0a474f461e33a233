"""Export a checkpoint to ONNX or TorchScript, checked against PyTorch before it is kept.

    python export.py -c best.ckpt --format onnx -o model.onnx
    python infer.py -d ./photos -c model.onnx            # predicts through onnxruntime, same CSV

The exported model outputs what infer.py reports (scores, or class probabilities), fp32, any batch
size; targets or classes and the preprocessing are stored inside the file. The export is written
only if it agrees with the PyTorch model in fp32 within --tolerance (max abs difference).
Exit codes: 0 written, 2 usage error or failed parity check (nothing written).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import EXPORT_FORMATS
from .common import ArgumentParser, add_checkpoint_flag, run, setup_logging


def get_args_parser(prog: str = "perspective export") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description="Export a checkpoint to ONNX or TorchScript with a parity check.")
    add_checkpoint_flag(p)
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="(default onnx)")
    p.add_argument("-o", "--output", required=True, help="file to write (.onnx, or .pt for TorchScript)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted abs difference from the PyTorch model in fp32 (default 1e-4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective export") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.export import export
    from perspective.predict import load_checkpoint, shipped_checkpoint

    checkpoint = args.checkpoint or shipped_checkpoint()
    difference = export(load_checkpoint(checkpoint), args.output, args.format, args.tolerance)
    print(f"{args.format} model written to {args.output}; max abs difference from PyTorch (fp32): {difference:.2e}")
    return 0


if __name__ == "__main__":
    run(main, "perspective export")
