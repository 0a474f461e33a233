"""``perspective download``: fetch the images of a URL list, verified, resumable (``perspective.download``)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

from ..config import DownloadConfig
from .common import (
    ArgumentParser,
    add_config_flag,
    add_output_flag,
    add_quiet_flag,
    config_of,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
    setup_logging,
)

D = DownloadConfig  # every default is DownloadConfig's


def get_args_parser(prog: str = "perspective download") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Download the images of a URL list (a text file, one URL per line, or a CSV with a url "
                    "column) into a folder; every file is verified as an image; DIR/manifest.csv records each "
                    "URL's file, status and error with the CSV's other columns. A rerun skips what is done.",
        epilog="Guide: docs/download.md",
    )
    add_config_flag(p)
    p.add_argument("list", metavar="LIST", help="text file of URLs, or CSV with a url column")
    add_output_flag(p, None, "folder for the images and manifest.csv", "--out")
    p.add_argument("-w", "--workers", type=positive_int, default=D.workers,
                   help=f"downloads at once, more than the cores: they wait on the network (default {D.workers})")
    p.add_argument("--timeout", type=positive_float, default=D.timeout,
                   help=f"seconds without a connection or data before an attempt fails (default {D.timeout:g})")
    p.add_argument("--retries", type=non_negative_int, default=D.retries,
                   help=f"attempts after a timeout, 5xx, 429 or dropped connection (default {D.retries})")
    p.add_argument("--backoff", type=non_negative_float, default=D.backoff,
                   help=f"seconds before a retry, doubled up to 60 (default {D.backoff:g})")
    p.add_argument("--max-mb", type=positive_float, default=D.max_mb,
                   help=f"largest file in MiB (default {D.max_mb:g})")
    p.add_argument("--max-pixels", type=positive_int, default=D.max_pixels,
                   help=f"largest image, width x height (default {D.max_pixels})")
    add_quiet_flag(p, "no progress bar, only warnings")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective download") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from pathlib import Path

    from perspective.download import DONE, download_all, read_url_list, summarize, write_manifest
    from perspective.errors import NothingDone
    from perspective.progress import logs_beside_bar

    for name in ("httpx", "httpcore"):  # a line per request; ours are the failures
        logging.getLogger(name).setLevel(logging.WARNING)
    config = config_of(DownloadConfig, args, "list", "output")
    items, extra_columns = read_url_list(args.list)
    out_dir = Path(args.output)
    start = time.monotonic()
    try:
        with logs_beside_bar(not args.quiet):
            download_all(items, out_dir, config, progress=not args.quiet)
    finally:
        manifest = write_manifest(out_dir, items, extra_columns)
    print(f"{summarize(items)} in {time.monotonic() - start:.1f} s; manifest: {manifest}")
    if not any(item.status in DONE for item in items):
        raise NothingDone("no file could be downloaded")
    return 0


if __name__ == "__main__":
    run(main, "perspective download")
