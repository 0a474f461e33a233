"""Downloading a URL list into a folder, verified, with a manifest of what happened: ``urls`` (the list
and safe file names) and ``fetch`` (the downloads, their checks and the manifest).
``python -m perspective.download`` is ``perspective download``."""

from ..config import IMAGE_EXTENSIONS, DownloadConfig
from .fetch import (
    DONE,
    MANIFEST,
    STATUSES,
    DownloadError,
    download_all,
    read_manifest,
    summarize,
    verify_image,
    write_manifest,
)
from .urls import Item, plan_names, read_url_list, safe_name, url_hash

__all__ = [
    "DONE", "IMAGE_EXTENSIONS", "MANIFEST", "STATUSES", "DownloadConfig", "DownloadError", "Item", "download_all",
    "plan_names", "read_manifest", "read_url_list", "safe_name", "summarize", "url_hash", "verify_image",
    "write_manifest",
]
