"""Which unlabelled photos to label next, for the most gain per label.

    perspective select -d ./unlabelled -n 100 -c checkpoints/resnet18/<run>/last.ckpt -o select/
    perspective select -d ./unlabelled -n 100 -c checkpoints/resnet18/<run>/last.ckpt --labelled ./labelled/images --by uncertainty

Writes select.csv (rank, filename, reason, uncertainty, distance, path) and select.png (the first 16)
into the output folder. Exit codes: 0 done, 1 no image could be read, 2 usage or data error.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import SelectConfig
from ..config.flags import HARDWARE, MODEL
from ..config.labelling import LABEL_STUDIO
from ..config.shared import SEVERAL_PROCESSES
from .common import run, setup_logging
from .parser import CommandParser, command_parser

NOT_FLAGS_HERE = (*SEVERAL_PROCESSES, "compile", "tta", "interval")  # one process; its own test-time settings

DESCRIPTION = ("Rank unlabelled photos for labelling: the model's uncertainty (interval width, or the margin "
               "between the two likeliest classes) balanced with diversity (distance in the backbone's "
               "feature space). Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective select") -> CommandParser:
    return command_parser(prog, SelectConfig, groups=(MODEL, HARDWARE, LABEL_STUDIO), leave_out=NOT_FLAGS_HERE,
                          description=DESCRIPTION, epilog="Guide: docs/trust.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective select") -> int:
    cfg = get_args_parser(prog).parse_config(argv)
    setup_logging(cfg.quiet)
    from perspective.trust.select import CONTACT_SHEET, SELECT_CSV, select_images

    table = select_images(cfg)
    shown = table[["rank", "filename", "reason", "uncertainty", "distance"]].head(10)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{len(table)} photos chosen ({cfg.by}; {table.attrs.get('unreadable', 0)} unreadable, skipped): "
          f"{cfg.output}/{SELECT_CSV}; contact sheet: {cfg.output}/{CONTACT_SHEET}")
    if "sent" in table.attrs:
        title, imported, present = table.attrs["sent"]
        print(f"Label Studio project {title!r}: {imported} tasks added, {present} already there ({cfg.label_studio})")
    return 0


if __name__ == "__main__":
    run(main, "perspective select")
