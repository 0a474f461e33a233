"""Audit the labels of a data set: k short training runs, out-of-fold predictions, worst labels first.

    perspective audit -d ./my_data -o audit/                 # 5 folds of 8 epochs, train's other defaults
    perspective audit -d ./my_data --folds 3 -e 5 --weights none

Writes audit.csv (filename, label quality in [0, 1] with the lowest first, the given label or
targets, the out-of-fold prediction) and worst.png (a contact sheet of the worst rows) into the
output folder. Training flags are train's. Exit codes: 0 done, 2 usage or data error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import FOLDS, AuditConfig, TrainConfig
from .common import add_output_flag, config_of, existing_file, positive_int, run, setup_logging
from .train import train_flags_parser

D = AuditConfig  # the audit's own defaults; each fold's run takes train's


def get_args_parser(prog: str = "perspective audit") -> argparse.ArgumentParser:
    p = train_flags_parser(prog, "data", "max_epochs")
    p.description = ("Rank the rows of a labelled data set by how much their label disagrees with a model that "
                     "never saw it (k-fold out-of-fold predictions), worst first. Every flag of perspective train "
                     "applies to each fold's run.")
    p.epilog = "Guide: docs/trust.md; every flag: docs/cli.md"
    g = p.add_argument_group("audit")
    g.add_argument("--folds", type=positive_int, default=D.folds,
                   help="training runs, each leaving one fold out (default: "
                        f"{FOLDS}; with --calibrate, as many as give each run the model's training size)")
    add_output_flag(g, D.output, "folder for audit.csv and worst.png")
    g.add_argument("--calibrate", type=existing_file, default=None, metavar="MODEL.ckpt",
                   help="store a conformal calibration from the out-of-fold errors in this checkpoint of the same "
                        "data (default: none)")
    p.set_defaults(max_epochs=D.max_epochs)
    for action in p._actions:  # the short schedule is this command's default, and -h says so
        if action.dest == "max_epochs":
            action.help = f"epochs of each fold's run (default {D.max_epochs})"
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective audit") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.trust.audit import AUDIT_CSV, CONTACT_SHEET, run_audit

    output = args.output
    table, folds = run_audit(config_of(TrainConfig, args, "folds", "output", "calibrate"), args.folds, output,
                             args.calibrate)
    summary = ("filename", "label_quality", "suspect", "given", "predicted", "typical_error", "predicted_probability")
    shown = table[[c for c in summary if c in table.columns]].head(10)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"{len(table)} rows audited in {folds} folds, worst first: {output}/{AUDIT_CSV}; contact sheet: "
          f"{output}/{CONTACT_SHEET}")
    if args.calibrate:
        print(f"conformal calibration from the out-of-fold errors stored in {args.calibrate}")
    return 0


if __name__ == "__main__":
    run(main, "perspective audit")
