"""``perspective download``: fetch the images of a URL list, verified, resumable (``perspective.download``)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ..download import DONE, DownloadConfig, download_all, read_url_list, summarize, write_manifest
from ..errors import NothingDone
from .common import (
    ArgumentParser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
    setup_logging,
)


def get_args_parser(prog: str = "perspective download") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Download the images of a URL list (a text file, one URL per line, or a CSV with a url "
                    "column) into a folder; every file is verified as an image; DIR/manifest.csv records each "
                    "URL's file, status and error with the CSV's other columns. A rerun skips what is done.",
    )
    p.add_argument("list", metavar="LIST", help="text file of URLs, or CSV with a url column")
    p.add_argument("-o", "--output", "--out", dest="out", required=True, metavar="DIR", help="folder for the images and manifest.csv")
    p.add_argument("-w", "--workers", type=positive_int, default=8, help="downloads at the same time (default 8)")
    p.add_argument("--timeout", type=positive_float, default=20.0,
                   help="seconds to connect, and without data while reading, before an attempt fails (default 20)")
    p.add_argument("--retries", type=non_negative_int, default=3,
                   help="further attempts after a timeout, 5xx, 429 or dropped connection (default 3)")
    p.add_argument("--backoff", type=non_negative_float, default=1.0,
                   help="seconds before the first retry, doubled for each next one up to 60 (default 1)")
    p.add_argument("--max-mb", type=positive_float, default=50.0, help="largest file in MiB (default 50)")
    p.add_argument("--max-pixels", type=positive_int, default=50_000_000,
                   help="largest image, width x height (default 50000000)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only warnings")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective download") -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    for name in ("httpx", "httpcore"):  # a line per request; ours are the failures
        logging.getLogger(name).setLevel(logging.WARNING)
    items, extra_columns = read_url_list(args.list)
    out_dir = Path(args.out)
    config = DownloadConfig(workers=args.workers, timeout=args.timeout, retries=args.retries, backoff=args.backoff,
                            max_bytes=int(args.max_mb * 2**20), max_pixels=args.max_pixels)
    start = time.monotonic()
    try:
        with logging_redirect_tqdm():
            download_all(items, out_dir, config, progress=not args.quiet)
    finally:
        manifest = write_manifest(out_dir, items, extra_columns)
    print(f"{summarize(items)} in {time.monotonic() - start:.1f} s; manifest: {manifest}")
    if not any(item.status in DONE for item in items):
        raise NothingDone("no file could be downloaded")
    return 0


if __name__ == "__main__":
    run(main, "perspective download")
