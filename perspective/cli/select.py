"""Which unlabelled photos to label next, for the most gain per label.

    perspective select -d ./unlabelled -n 100 -c checkpoints/resnet18/<run>/last.ckpt -o select/
    perspective select -d ./unlabelled -n 100 -c checkpoints/resnet18/<run>/last.ckpt --labelled ./labelled/images --by uncertainty

Writes select.csv (rank, filename, reason, uncertainty, distance, path) and select.png (the first 16)
into the output folder. Exit codes: 0 done, 1 no image could be read, 2 usage or data error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import SELECT_METHODS, SelectConfig
from .common import (
    ArgumentParser,
    add_batch_flags,
    add_checkpoint_flag,
    add_config_flag,
    add_device_flags,
    add_output_flag,
    add_precision_flag,
    add_quiet_flag,
    config_of,
    existing_folder,
    non_negative_int,
    positive_int,
    run,
    setup_logging,
)

D = SelectConfig  # every default is SelectConfig's


def get_args_parser(prog: str = "perspective select") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Rank unlabelled photos for labelling: the model's uncertainty (interval width, or the margin "
                    "between the two likeliest classes) balanced with diversity (distance in the backbone's "
                    "feature space). Long flags also accept underscores.",
        epilog="Guide: docs/trust.md",
    )
    add_config_flag(p)
    p.add_argument("-d", "--data", type=existing_folder, required=True,
                   help="the unlabelled photos, subfolders too")
    p.add_argument("-n", "--count", type=positive_int, default=D.count, help=f"photos to choose (default {D.count})")
    add_checkpoint_flag(p)
    add_output_flag(p, D.output, "folder for select.csv and select.png")
    p.add_argument("--by", choices=SELECT_METHODS, default=D.by,
                   help="balanced = uncertainty times distance to the chosen and labelled; uncertainty alone; "
                        f"random, the baseline (default {D.by})")
    p.add_argument("--labelled", type=existing_folder, default=None, metavar="DIR",
                   help="photos labelled already, counted as chosen (default: none)")
    p.add_argument("--seed", type=non_negative_int, default=D.seed, help=f"seed of --by random (default {D.seed})")
    add_batch_flags(p, D)
    add_device_flags(p, D, processes=False)
    add_precision_flag(p)
    add_quiet_flag(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective select") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.trust.select import CONTACT_SHEET, SELECT_CSV, select_images

    cfg = config_of(SelectConfig, args)
    table = select_images(cfg)
    print(table.drop(columns="path").head(10).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{len(table)} photos chosen ({cfg.by}; {table.attrs.get('unreadable', 0)} unreadable, skipped): "
          f"{cfg.output}/{SELECT_CSV}; contact sheet: {cfg.output}/{CONTACT_SHEET}")
    return 0


if __name__ == "__main__":
    run(main, "perspective select")
