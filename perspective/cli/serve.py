"""Serve perspective predictions over HTTP: POST an image, get its scores back as JSON.

    python serve.py                                  # the shipped model on http://127.0.0.1:8000
    python serve.py -c best.ckpt --port 9000 --api-key s3cret
    curl -F file=@car.jpg http://127.0.0.1:8000/predict

Requests, rejected uploads and predictions are logged to --log-file (rotated by size) and to stderr.
Exit codes: 0 after SIGTERM (a clean stop), 130 after Ctrl-C, 2 for usage errors (one line on stderr).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .common import (
    ArgumentParser,
    add_checkpoint_flag,
    add_device_flag,
    add_prediction_flags,
    non_negative_float,
    non_negative_int,
    port,
    positive_float,
    positive_int,
    prediction_device,
    run,
    setup_logging,
)


def get_args_parser(prog: str = "perspective serve") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="HTTP prediction server (FastAPI + uvicorn): POST /predict with one or more image files, "
                    "GET /health, GET /model, docs at /docs. Concurrent requests are batched into one forward "
                    "pass. Long flags also accept underscores.",
    )
    add_checkpoint_flag(p, exported=True)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 = any free port, logged)")
    p.add_argument("--log-file", default="api.log", help="log file, rotated by size (default ./api.log)")
    p.add_argument("--log-max-mb", type=positive_float, default=10.0,
                   help="rotate the log file at this size (default 10)")
    p.add_argument("--log-backups", type=non_negative_int, default=5, help="rotated log files kept (default 5)")
    p.add_argument("--max-batch", type=positive_int, default=16, help="most images in one forward pass (default 16)")
    p.add_argument("--max-wait-ms", type=non_negative_float, default=10.0,
                   help="how long a batch may wait for more images while requests are being decoded (default 10)")
    p.add_argument("--max-upload-mb", type=positive_float, default=10.0,
                   help="largest request body in MiB; bigger ones get 413 (default 10)")
    p.add_argument("--max-pixels", type=positive_int, default=50_000_000,
                   help="largest image, width x height; bigger ones get 400 before decoding (default 50000000)")
    p.add_argument("--max-files", type=positive_int, default=64, help="most files in one request (default 64)")
    p.add_argument("--api-key", default=None,
                   help="require this key in the X-API-Key header for /predict and /model (/health stays open)")
    add_device_flag(p)
    add_prediction_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective serve") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging()
    from perspective.predict import Predictor, load_model, shipped_checkpoint
    from perspective.serving import ServeConfig, create_app, serve, setup_log_file

    config = ServeConfig(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels, max_files=args.max_files, api_key=args.api_key or None,
    )
    setup_log_file(args.log_file, max_bytes=int(args.log_max_mb * 2**20), backups=args.log_backups)  # before the slow load
    checkpoint = args.checkpoint or shipped_checkpoint()
    predictor = Predictor(load_model(checkpoint), device=prediction_device(args), precision=args.precision,
                          compile=args.compile, tta=args.tta)
    serve(create_app(predictor, checkpoint, config), args.host, args.port)
    return 0


if __name__ == "__main__":
    run(main, "perspective serve")
