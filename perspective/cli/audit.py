"""Audit the labels of a data set: k short training runs, out-of-fold predictions, worst labels first.

    perspective audit -d ./my_data -o audit/                 # 5 folds of 8 epochs, train's other defaults
    perspective audit -d ./my_data --folds 3 -e 5 --weights none

Writes audit.csv (filename, label quality in [0, 1] with the lowest first, the given label or
targets, the out-of-fold prediction) and worst.png (a contact sheet of the worst rows) into the
output folder. Training flags are train's. Exit codes: 0 done, 2 usage or data error.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import AuditConfig, TrainConfig
from ..config.labelling import LABEL_STUDIO
from ..config.training import AUDIT
from .common import run, setup_logging
from .parser import CommandParser, command_parser
from .train import WITH_TRAIN_FLAGS, train_flags_hidden

DESCRIPTION = ("Rank the rows of a labelled data set by how much their label disagrees with a model that never "
               "saw it (k-fold out-of-fold predictions), worst first. Every flag of perspective train applies to "
               "each fold's run.")


def get_args_parser(prog: str = "perspective audit") -> CommandParser:
    """Every train flag (each fold's run) and the audit's own; its -e is the audit's short schedule."""
    hidden = train_flags_hidden("data", "max_epochs")
    return command_parser(prog, TrainConfig, AuditConfig, groups=(AUDIT, LABEL_STUDIO), hidden=hidden, usage=WITH_TRAIN_FLAGS,
                          description=DESCRIPTION, epilog="Guide: docs/trust.md; every flag: docs/cli.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective audit") -> int:
    parsed = get_args_parser(prog).parse(argv)
    cfg, audit = parsed.config(TrainConfig), parsed.config(AuditConfig)
    setup_logging(cfg.quiet)
    from perspective.trust.audit import AUDIT_CSV, CONTACT_SHEET, run_audit

    output = audit.output
    table, folds = run_audit(cfg, audit.folds, output, audit.calibrate, send_to=audit, count=audit.count)
    summary = ("filename", "label_quality", "suspect", "given", "predicted", "typical_error", "predicted_probability")
    shown = table[[c for c in summary if c in table.columns]].head(10)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"{len(table)} rows audited in {folds} folds, worst first: {output}/{AUDIT_CSV}; contact sheet: "
          f"{output}/{CONTACT_SHEET}")
    if audit.calibrate:
        print(f"conformal calibration from the out-of-fold errors stored in {audit.calibrate}")
    if "sent" in table.attrs:
        title, imported, present = table.attrs["sent"]
        print(f"Label Studio project {title!r}: {imported} tasks added, {present} already there ({audit.label_studio})")
    return 0


if __name__ == "__main__":
    run(main, "perspective audit")
