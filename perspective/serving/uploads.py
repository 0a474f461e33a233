"""Uploads: the request body read within its size limit, multipart parts, one image decoded as
``infer`` decodes it; every refusal a 4xx with a reason (``reject``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from ..data import TooManyPixels, failure_reason, load_resized

FILE_FIELD = "file"
RAW_TYPES = ("image/", "application/octet-stream")


@dataclass
class Upload:
    filename: str
    data: bytes


def reject(status: int, reason: str) -> HTTPException:
    return HTTPException(status_code=status, detail=reason)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes.

    A declared Content-Length over the limit is refused before reading anything; a chunked body is
    counted as it streams in. What is left unread is discarded by uvicorn, never stored.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise reject(413, f"upload of {int(declared)} bytes is over the limit of {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise reject(413, f"upload is over the limit of {limit} bytes")
    except ClientDisconnect:
        raise reject(400, f"client disconnected after {len(body)} bytes of its upload") from None
    return bytes(body)


def parse_multipart(body: bytes, content_type: str, max_files: int) -> list[Upload]:
    """The ``file`` parts of a multipart/form-data body, in order (other fields are ignored)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise reject(400, "multipart body without a boundary in its Content-Type")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_part_begin() -> None:
        parts.append({"disposition": b"", "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        if bytes(header["field"]).lower() == b"content-disposition":
            parts[-1]["disposition"] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end, "on_part_data": on_part_data}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise reject(400, f"malformed multipart body ({exc})") from None
    uploads = []
    for part in parts:
        _, options = parse_options_header(part["disposition"])
        if options.get(b"name", b"").decode("utf-8", "replace") != FILE_FIELD:
            continue
        name = options.get(b"filename", b"").decode("utf-8", "replace")[:200]
        uploads.append(Upload(name or f"file{len(uploads)}", bytes(part["data"])))
    if len(uploads) > max_files:
        raise reject(413, f"{len(uploads)} files in one request; the limit is {max_files}")
    return uploads


def decode_image(upload: Upload, resize: Callable, max_pixels: int, draft_size: int | None = None) -> torch.Tensor:
    """Bytes -> resized uint8 image, as infer.py reads a file (``load_resized``); 400 when it cannot be.

    ``load_image`` checks the pixel count from the header before anything is decoded, so a small
    file that would expand to gigabytes (a decompression bomb) costs nothing.
    """
    name = upload.filename
    if not upload.data:
        raise reject(400, f"{name}: empty file, not an image")
    try:
        return load_resized(io.BytesIO(upload.data), resize, draft_size, max_pixels)
    except TooManyPixels as exc:
        raise reject(400, f"{name}: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise reject(400, f"{name}: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise reject(400, f"{name}: not an image (no format Pillow reads)") from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data, any codec error
        raise reject(400, f"{name}: corrupt image ({failure_reason(exc)})") from None
