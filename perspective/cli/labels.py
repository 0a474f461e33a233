"""A Label Studio project's finished annotations as the toolkit's labels.csv.

    perspective labels --label-studio http://localhost:8080 --project "perspective select" -o photos/labels.csv
    perspective train -d photos          # trains on the answers

One row a photo with a finished annotation; for each target the latest annotation that gives it; a
target nobody gave stays blank (a partial label). The token: $LABEL_STUDIO_API_KEY or
--label-studio-key. Exit codes: 0 written, 2 usage error or nothing to write.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import LabelsConfig
from ..config.labelling import LABEL_STUDIO
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("Write a Label Studio project's finished annotations (made by select or audit --label-studio) as "
               "a labels.csv that perspective train reads. Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective labels") -> CommandParser:
    return command_parser(prog, LabelsConfig, groups=(LABEL_STUDIO,), description=DESCRIPTION,
                          epilog="Guide: docs/data_loop.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective labels") -> int:
    cfg = get_args_parser(prog).parse_config(argv)
    setup_logging(cfg.quiet)
    from perspective.labelling import connect, fetch_answers, write_labels

    studio = connect(cfg.label_studio, cfg.label_studio_key, cfg.document_root)
    answers = fetch_answers(studio, cfg.project)
    written = write_labels(answers, cfg.output)
    blank = int(answers.frame.drop(columns="path").isna().sum().sum())
    clipped = f"; {answers.clipped} scores outside [0, 1] clipped" if answers.clipped else ""
    print(f"{len(answers.frame)} photos' labels from {cfg.project!r} written to {written} ({blank} values left blank "
          f"where skipped; {answers.waiting} tasks without a finished annotation{clipped})")
    if blank and answers.task == "regression":
        print("blank values are partial labels: train on them with perspective train --allow-missing-targets")
    return 0


if __name__ == "__main__":
    run(main, "perspective labels")
