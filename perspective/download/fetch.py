"""Download the images of a URL list into a folder, verified, with a manifest of what happened.

    perspective download urls.txt -o data/raw
    perspective download labels.csv -o data/raw --workers 16 --timeout 30 --retries 5

LIST is a text file with one URL per line (blank lines and ``#`` comments are skipped), or a CSV with
a ``url`` column; the CSV's other columns (labels, a ``filename``) are kept in ``DIR/manifest.csv``
beside ``url``, ``file``, ``status`` (``ok``, ``exists``, ``duplicate``, ``error``) and ``error``.

Why it is shaped this way:

- ``--workers`` asyncio tasks share one httpx AsyncClient: downloading is waiting on the network, and
  unlike threads blocked in a read, tasks stop the moment Ctrl-C cancels them. Pillow's checks run
  in a thread. Each file streams to ``<file>.partial`` and is renamed only once it is complete and
  Pillow has verified it, so the folder never holds half a file or a web page named ``.jpg``.
- Timeouts, 5xx, 429 and dropped connections are retried with exponential backoff; a 4xx, a refused
  connection or an unknown host are broken links: logged, recorded, skipped.
- Output names never come from what the server sends: they are the URL path's last part (or the
  CSV's ``filename``) reduced to a safe basename. Names that clash are all given a short hash of
  their URL, so the result does not depend on download order. A name without an image extension gets
  the one of the format Pillow found (chosen from a fixed table).
- Only formats the training code reads are accepted (``Image.open(formats=...)``), so no untrusted
  file ever reaches a decoder with an external program behind it (EPS and Ghostscript).
- A rerun skips what is done: a URL recorded ``ok`` in the manifest whose file is still there, or a
  file already at the planned name that Pillow verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx
from PIL import Image

from ..config import DownloadConfig
from ..errors import UserError
from ..progress import progress as progress_of
from ..results import ResultWriter
from .urls import MANIFEST_COLUMNS, Item, first_of_each, has_image_extension, is_http_url, plan_names, safe_name

log = logging.getLogger("perspective.download")

MANIFEST = "manifest.csv"
STATUSES = ("ok", "exists", "duplicate", "error")
DONE = ("ok", "exists")  # the statuses of a URL whose file is there
# Pillow formats accepted, with the extension a name without one gets. MPO (a multi-picture JPEG) has no
# opener of its own: the JPEG one returns it.
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp",
                     "TIFF": ".tif", "WEBP": ".webp", "PPM": ".ppm"}
OPEN_FORMATS = tuple(f for f in FORMAT_EXTENSIONS if f != "MPO")
CHUNK = 64 * 1024
USER_AGENT = "perspective-download/0.1"
MAX_WAIT = 60.0  # seconds: the longest wait before a retry, whatever the backoff or a server's Retry-After


class DownloadError(Exception):
    """One attempt failed; ``retry`` says whether another attempt may do better."""

    def __init__(self, message: str, retry: bool = False, wait: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.wait = wait


# --- the list ---------------------------------------------------------------------------------

def verify_image(path: str | os.PathLike, max_pixels: int) -> str:
    """The Pillow format of a complete, decodable image of at most ``max_pixels``; DownloadError otherwise.

    ``verify()`` checks the container (PNG checksums, for one); a second open decodes every pixel,
    which catches truncated JPEGs that ``verify()`` lets through.
    """
    try:
        with Image.open(path, formats=OPEN_FORMATS) as img:
            width, height = img.size
            fmt = img.format or ""
            if width * height > max_pixels:
                raise DownloadError(f"{width}x{height} pixels is over the limit of {max_pixels}")
            img.verify()
        with Image.open(path, formats=OPEN_FORMATS) as img:
            img.load()
    except DownloadError:
        raise
    except Image.DecompressionBombError as exc:
        raise DownloadError(f"too many pixels ({exc})") from None
    except Image.UnidentifiedImageError:
        raise DownloadError("not an image (no format that Pillow reads here)") from None
    except Exception as exc:  # noqa: BLE001 - any decoder error means a broken image
        raise DownloadError(f"broken image ({type(exc).__name__}: {exc})") from None
    return fmt


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_WAIT) if value.isdigit() else None


def _printable(text: str, limit: int = 60) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", text)[:limit]


async def fetch(client: httpx.AsyncClient, url: str, partial: Path, config: DownloadConfig) -> str:
    """One attempt: stream ``url`` into ``partial``; returns its Content-Type. DownloadError on failure."""
    try:
        async with client.stream("GET", url) as response:
            if response.status_code >= 400:
                code = response.status_code
                retry = code >= 500 or code == 429
                raise DownloadError(f"HTTP {code} {response.reason_phrase}", retry, _retry_after(response))
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > config.max_bytes:
                raise DownloadError(f"{declared} bytes is over the limit of {config.max_bytes} bytes")
            size = 0
            with open(partial, "wb") as out:
                async for chunk in response.aiter_raw(CHUNK):
                    size += len(chunk)
                    if size > config.max_bytes:
                        raise DownloadError(f"over the limit of {config.max_bytes} bytes")
                    out.write(chunk)
            if size == 0:
                raise DownloadError("empty response")
            return _printable(response.headers.get("content-type", ""))
    except httpx.TimeoutException:
        raise DownloadError(f"timed out ({config.timeout:g} s without an answer)", retry=True) from None
    except httpx.ConnectError as exc:
        raise DownloadError(f"cannot connect ({_root_cause(exc)})") from None
    except (httpx.TooManyRedirects, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from None
    except httpx.TransportError as exc:  # a dropped connection or a broken response: worth another try
        raise DownloadError(f"{type(exc).__name__}: {exc}", retry=True) from None


def _root_cause(exc: BaseException) -> str:
    """The OS's reason under httpx's "All connection attempts failed": refused, unknown host, unreachable."""
    reason, seen = str(exc), set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno or exc.strerror):
            positive = isinstance(exc.errno, int) and exc.errno > 0  # DNS errors have negative numbers
            reason = os.strerror(exc.errno) if positive else exc.strerror or reason
        exc = exc.__cause__ or exc.__context__
    return reason


async def fetch_with_retries(client: httpx.AsyncClient, url: str, partial: Path, config: DownloadConfig) -> str:
    """``fetch`` with up to ``config.retries`` more attempts, waiting ``backoff * 2**n`` (at most 60 s) between them."""
    for attempt in range(config.retries + 1):
        try:
            return await fetch(client, url, partial, config)
        except DownloadError as exc:
            if not exc.retry or attempt == config.retries:
                if attempt:
                    raise DownloadError(f"{exc} (after {attempt + 1} attempts)") from None
                raise
            delay = max(exc.wait or 0.0, min(config.backoff * 2.0 ** min(attempt, 64), MAX_WAIT))
            log.info("%s: %s; retrying in %.2g s", url, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def download_one(client: httpx.AsyncClient, item: Item, name: str, out_dir: Path, config: DownloadConfig,
                       recorded: dict[str, str]) -> tuple[str, str, str]:
    """(file, status, error) for one URL: skipped when already there, else downloaded and verified.

    Pillow runs in a thread, so that decoding one large image does not hold up the other downloads.
    """
    done = await asyncio.to_thread(_already_there, name, out_dir, recorded.get(item.url), config.max_pixels)
    if done:
        return done, "exists", ""
    partial = out_dir / f"{name}.partial"
    try:
        content_type = await fetch_with_retries(client, item.url, partial, config)
        try:
            fmt = await asyncio.to_thread(verify_image, partial, config.max_pixels)
        except DownloadError as exc:
            shown = f"Content-Type {content_type}" if content_type else "no Content-Type"
            raise DownloadError(f"{exc}; {shown}") from None
        final = name if has_image_extension(name) else name + FORMAT_EXTENSIONS[fmt]
        os.replace(partial, out_dir / final)
        return final, "ok", ""
    except DownloadError as exc:
        return "", "error", str(exc)
    except OSError as exc:  # this machine's side (a folder that cannot be written, a full disk): ends the run
        raise UserError(f"--out {out_dir}: cannot write {partial.name} ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):  # best effort: the error above says what is wrong
            partial.unlink(missing_ok=True)


def _already_there(name: str, out_dir: Path, recorded: str | None, max_pixels: int) -> str:
    """The file of a URL done before: recorded in the manifest and present, or present and verified."""
    if recorded and safe_name(recorded) == recorded and _matches_plan(recorded, name):
        path = out_dir / recorded
        if path.is_file() and path.stat().st_size > 0:
            return recorded
    if has_image_extension(name) and (out_dir / name).is_file():
        try:
            verify_image(out_dir / name, max_pixels)
            return name
        except DownloadError as exc:
            log.info("%s: present but %s; downloading it again", name, exc)
    return ""


def _matches_plan(recorded: str, name: str) -> bool:
    if has_image_extension(name):
        return recorded == name
    stem, ext = os.path.splitext(recorded)
    return stem == name and ext in FORMAT_EXTENSIONS.values()


# --- the whole list ---------------------------------------------------------------------------

def make_client(config: DownloadConfig) -> httpx.AsyncClient:
    """One client for every download: pooled connections up to ``workers``, redirects followed, no compression."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(config.timeout),
        limits=httpx.Limits(max_connections=config.workers, max_keepalive_connections=config.workers),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5", "Accept-Encoding": "identity"},
    )


def download_all(items: Sequence[Item], out_dir: str | os.PathLike, config: DownloadConfig | None = None,
                 progress: bool = False) -> list[Item]:
    """Download every distinct http(s) URL of ``items`` into ``out_dir``; fills each item's file, status, error.

    Returns ``items``. On Ctrl-C the downloads in flight are cancelled at once (their ``.partial``
    removed), the unfinished items are marked ``error: interrupted`` and KeyboardInterrupt is raised again.
    """
    config = config or DownloadConfig()
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot create it ({exc.strerror or exc})") from None
    first = first_of_each(items)
    try:
        asyncio.run(_download(first, plan_names(items), read_manifest(out_dir), out_dir, config, progress))
    finally:
        _finish(items, first)
    return list(items)


async def _download(first: dict[str, Item], names: dict[str, str], recorded: dict[str, str], out_dir: Path,
                    config: DownloadConfig, progress: bool) -> None:
    """``config.workers`` tasks take the URLs one by one from a shared iterator: concurrency and memory stay
    bounded however long the list is (one task per URL would hold a million coroutines for a million URLs).
    """
    todo = iter(first.items())
    with progress_of(log, len(first), show=progress, desc="download", unit="file", noun="files",
                     dynamic_ncols=True) as bar:
        async with make_client(config) as client:

            async def worker() -> None:
                for url, item in todo:
                    item.file, item.status, item.error = await download_one(
                        client, item, names[url], out_dir, config, recorded)
                    if item.status == "error":
                        log.warning("line %d: %s: %s", item.line, _printable(item.url, 200), item.error)
                    bar.update()

            await asyncio.gather(*(worker() for _ in range(min(config.workers, len(first)) or 1)))


def read_manifest(out_dir: Path) -> dict[str, str]:
    """URL -> file of the rows an earlier run finished (``ok`` or ``exists``); {} when there is none."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {row["url"]: row["file"] for row in csv.DictReader(f)
                    if row.get("status") in DONE and row.get("url") and row.get("file")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError) as exc:
        log.warning("%s: unreadable (%s); every file is checked again", path, exc)
        return {}


def _finish(items: Iterable[Item], first: dict[str, Item]) -> None:
    """Statuses of the rows that were not downloaded themselves: bad URLs, repeats, unfinished ones."""
    for item in items:
        if not is_http_url(item.url):
            item.status, item.error = "error", ("no URL" if not item.url else "not an http(s) URL")
        elif first[item.url] is not item:
            original = first[item.url]
            item.status, item.error = "duplicate", f"same URL as line {original.line}"
            item.file = original.file if original.status in DONE else ""
        elif not item.status:
            item.status, item.error = "error", "interrupted"


def write_manifest(out_dir: str | os.PathLike, items: Iterable[Item], extra_columns: Sequence[str]) -> Path:
    """``out_dir/manifest.csv``, written to a temporary file and renamed (``ResultWriter``)."""
    path = Path(out_dir) / MANIFEST
    with ResultWriter(path, [*MANIFEST_COLUMNS, *extra_columns]) as writer:
        for item in items:
            writer.write({**item.extra, "url": item.url, "file": item.file, "status": item.status, "error": item.error})
    return path


def summarize(items: Sequence[Item]) -> str:
    counts = Counter(item.status for item in items)
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES)
    return f"{len(items)} URLs: {parts}"
