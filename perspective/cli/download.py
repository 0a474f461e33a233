"""``perspective download``: fetch the images of a URL list, verified, resumable (``perspective.download``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ..config import DownloadConfig
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("Download the images of a URL list (a text file, one URL per line, or a CSV with a url "
               "column) into a folder; every file is verified as an image; DIR/manifest.csv records each "
               "URL's file, status and error with the CSV's other columns. A rerun skips what is done.")


def get_args_parser(prog: str = "perspective download") -> CommandParser:
    return command_parser(prog, DownloadConfig, description=DESCRIPTION, epilog="Guide: docs/download.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective download") -> int:
    config = get_args_parser(prog).parse_config(argv)
    setup_logging(config.quiet)
    from pathlib import Path

    from perspective.download import DONE, download_all, read_url_list, summarize, write_manifest
    from perspective.errors import NothingDone
    from perspective.progress import logs_beside_bar

    for name in ("httpx", "httpcore"):  # a line per request; ours are the failures
        logging.getLogger(name).setLevel(logging.WARNING)
    items, extra_columns = read_url_list(config.list)
    out_dir = Path(config.output)
    start = time.monotonic()
    try:
        with logs_beside_bar(not config.quiet):
            download_all(items, out_dir, config, progress=not config.quiet)
    finally:
        manifest = write_manifest(out_dir, items, extra_columns)
    print(f"{summarize(items)} in {time.monotonic() - start:.1f} s; manifest: {manifest}")
    if not any(item.status in DONE for item in items):
        raise NothingDone("no file could be downloaded")
    return 0


if __name__ == "__main__":
    run(main, "perspective download")
