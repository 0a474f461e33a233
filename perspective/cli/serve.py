"""Serve perspective predictions over HTTP: POST an image, get its scores back as JSON.

    perspective serve                                  # the shipped model on http://127.0.0.1:8000
    perspective serve -c checkpoints/resnet18/<run>/last.ckpt --port 9000 --api-key s3cret
    curl -F file=@car.jpg http://127.0.0.1:8000/predict

Requests, rejected uploads and predictions are logged to --log-file (rotated by size) and to stderr.
Exit codes: 0 after SIGTERM (a clean stop), 130 after Ctrl-C, 2 for usage errors (one line on stderr).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import ServeConfig
from ..config.flags import HARDWARE, MODEL
from ..config.shared import SEVERAL_PROCESSES
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("HTTP prediction server (FastAPI + uvicorn): POST /predict with one or more image files, "
               "GET /health, GET /model, docs at /docs, a demo page at /. Concurrent requests are batched "
               "into one forward pass. Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective serve") -> CommandParser:
    return command_parser(prog, ServeConfig, groups=(MODEL, HARDWARE), leave_out=SEVERAL_PROCESSES,
                          description=DESCRIPTION, epilog="Guide: docs/serving.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective serve") -> int:
    config = get_args_parser(prog).parse_config(argv)
    setup_logging(config.quiet)
    from perspective.prediction import model_for, one_device, predictor_for
    from perspective.serving import create_app, serve, setup_log_file

    config.api_key = config.api_key or None
    setup_log_file(config.log_file, max_bytes=int(config.log_max_mb * 2**20), backups=config.log_backups)  # before the slow load
    checkpoint, model = model_for(config)
    predictor = predictor_for(config, model, device=one_device(config))
    serve(create_app(predictor, checkpoint, config), config.host, config.port)
    return 0


if __name__ == "__main__":
    run(main, "perspective serve")
