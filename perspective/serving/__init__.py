"""The HTTP prediction server: ``app`` (the FastAPI application, its log), ``uploads`` (reading and
decoding what clients send), ``batcher`` (concurrent requests into one forward pass)."""

from ..config import ServeConfig
from .app import LOG_FORMAT, bind, create_app, model_summary, serve, setup_log_file
from .batcher import MicroBatcher
from .uploads import Upload, decode_image, parse_multipart, read_body, reject

__all__ = ["LOG_FORMAT", "MicroBatcher", "ServeConfig", "Upload", "bind", "create_app", "decode_image",
           "model_summary", "parse_multipart", "read_body", "reject", "serve", "setup_log_file"]
