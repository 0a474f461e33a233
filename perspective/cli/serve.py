"""Serve perspective predictions over HTTP: POST an image, get its scores back as JSON.

    perspective serve                                  # the shipped model on http://127.0.0.1:8000
    perspective serve -c checkpoints/resnet18/<run>/last.ckpt --port 9000 --api-key s3cret
    curl -F file=@car.jpg http://127.0.0.1:8000/predict

Requests, rejected uploads and predictions are logged to --log-file (rotated by size) and to stderr.
Exit codes: 0 after SIGTERM (a clean stop), 130 after Ctrl-C, 2 for usage errors (one line on stderr).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import ServeConfig
from .common import (
    ArgumentParser,
    add_checkpoint_flag,
    add_config_flag,
    add_device_flags,
    add_prediction_flags,
    add_quiet_flag,
    config_of,
    non_negative_float,
    non_negative_int,
    port,
    positive_float,
    positive_int,
    run,
    setup_logging,
)

D = ServeConfig  # every default is ServeConfig's


def get_args_parser(prog: str = "perspective serve") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="HTTP prediction server (FastAPI + uvicorn): POST /predict with one or more image files, "
                    "GET /health, GET /model, docs at /docs, a demo page at /. Concurrent requests are batched "
                    "into one forward pass. Long flags also accept underscores.",
        epilog="Guide: docs/serving.md",
    )
    add_config_flag(p)
    add_checkpoint_flag(p, exported=True)
    p.add_argument("--host", default=D.host,
                   help=f"address; 0.0.0.0 opens it to the network (default {D.host})")
    p.add_argument("--port", type=port, default=D.port, help=f"port; 0 = any free one, logged (default {D.port})")
    p.add_argument("--log-file", default=D.log_file, help=f"log file, rotated by size (default ./{D.log_file})")
    p.add_argument("--log-max-mb", type=positive_float, default=D.log_max_mb,
                   help=f"rotate the log file at this size (default {D.log_max_mb:g})")
    p.add_argument("--log-backups", type=non_negative_int, default=D.log_backups,
                   help=f"rotated log files kept (default {D.log_backups})")
    p.add_argument("-s", "--batch-size", "--max-batch", dest="batch_size", type=positive_int, default=D.batch_size,
                   help="most images in one forward pass; fewer than infer's, as a batch waits for its slowest "
                        f"upload (default {D.batch_size})")
    p.add_argument("-w", "--workers", type=non_negative_int, default=D.workers,
                   help="upload decoding threads (default: min(CPU count, 8))")
    p.add_argument("--max-wait-ms", type=non_negative_float, default=D.max_wait_ms,
                   help=f"a batch's wait for images being decoded (default {D.max_wait_ms:g})")
    p.add_argument("--max-upload-mb", type=positive_float, default=D.max_upload_mb,
                   help=f"largest request in MiB, else 413 (default {D.max_upload_mb:g})")
    p.add_argument("--max-pixels", type=positive_int, default=D.max_pixels,
                   help=f"largest image, width x height, else 400 (default {D.max_pixels})")
    p.add_argument("--max-files", type=positive_int, default=D.max_files,
                   help=f"most files in one request (default {D.max_files})")
    p.add_argument("--api-key", default=None,
                   help="X-API-Key that /predict, /explain and /model require (default: none)")
    add_device_flags(p, D, processes=False)
    add_prediction_flags(p)
    add_quiet_flag(p, "only warnings on stderr; the log file keeps all")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective serve") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.models import shipped_checkpoint
    from perspective.prediction import Predictor, load_model, one_device
    from perspective.serving import create_app, serve, setup_log_file

    config = config_of(ServeConfig, args)
    config.api_key = config.api_key or None
    setup_log_file(config.log_file, max_bytes=int(config.log_max_mb * 2**20), backups=config.log_backups)  # before the slow load
    checkpoint = config.checkpoint or shipped_checkpoint()
    predictor = Predictor(load_model(checkpoint), device=one_device(config), precision=config.precision,
                          compile=config.compile, tta=config.tta, interval=config.interval)
    serve(create_app(predictor, checkpoint, config), config.host, config.port)
    return 0


if __name__ == "__main__":
    run(main, "perspective serve")
