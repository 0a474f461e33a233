"""The URL list and the file names: reading a text or CSV list, and safe, clash-free names for the files.

Output names never come from what the server sends: they are the URL path's last part (or the
CSV's ``filename``) reduced to a safe basename. Names that clash are all given a short hash of
their URL, so the result does not depend on download order.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import IMAGE_EXTENSIONS
from ..errors import UserError

log = logging.getLogger("perspective.download")

MAX_NAME = 120
MANIFEST_COLUMNS = ("url", "file", "status", "error")  # the manifest's own columns, before the list's others


@dataclass
class Item:
    """One line of the list and what became of it."""

    line: int
    url: str
    extra: dict[str, str]
    name_hint: str = ""  # the CSV's filename value, if any
    file: str = ""
    status: str = ""
    error: str = ""


def read_url_list(path: str | os.PathLike) -> tuple[list[Item], list[str]]:
    """The items of a URL list and the CSV's other column names (none for a text list).

    A ``.csv`` file, or a file whose first line is a header with a ``url`` column, is a CSV;
    anything else is one URL per line. Raises UserError for a missing or unreadable file, a CSV
    without a ``url`` column, or a list without a single http(s) URL.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    if "\0" in text:
        raise UserError(f"{path}: a binary file, not a URL list")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if path.suffix.lower() == ".csv" or _looks_like_header(first):
        items, columns = _read_csv(text, path)
    else:
        items, columns = _read_text(lines), []
    if not any(is_http_url(item.url) for item in items):
        raise UserError(f"{path}: no http(s) URLs in it")
    return items, columns


def _looks_like_header(line: str) -> bool:
    return "://" not in line and "url" in (cell.strip().strip('"').lower() for cell in line.split(","))


def _read_text(lines: Sequence[str]) -> list[Item]:
    items = []
    for number, line in enumerate(lines, start=1):
        url = line.strip()
        if url and not url.startswith("#"):
            items.append(Item(number, url, {}))
    return items


def _read_csv(text: str, path: Path) -> tuple[list[Item], list[str]]:
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise UserError(f"{path}: empty CSV")
    header = [cell.strip() for cell in rows[0]]
    lowered = [cell.lower() for cell in header]
    if "url" not in lowered:
        raise UserError(f"{path}: no 'url' column (columns: {', '.join(header) or 'none'})")
    url_at = lowered.index("url")
    filename_at = lowered.index("filename") if "filename" in lowered else None
    columns = _extra_columns(header, url_at)
    items = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = row + [""] * (len(header) - len(row))
        extra = {name: cells[i] for i, name in columns}
        hint = cells[filename_at].strip() if filename_at is not None else ""
        items.append(Item(number, cells[url_at].strip(), extra, hint))
    return items, [name for _, name in columns]


def _extra_columns(header: list[str], url_at: int) -> list[tuple[int, str]]:
    """The CSV's other columns as (index, manifest name); ours win a clash, theirs get an ``input_`` prefix."""
    columns, taken = [], set(MANIFEST_COLUMNS)
    for i, name in enumerate(header):
        if i == url_at:
            continue
        out = name or f"column{i + 1}"
        while out in taken:
            out = f"input_{out}"
        if out != name:
            log.warning("column %r of the list is kept as %r in the manifest", name, out)
        taken.add(out)
        columns.append((i, out))
    return columns


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


# --- names ------------------------------------------------------------------------------------

def safe_name(text: str) -> str:
    """``text`` reduced to a safe basename: ``stem[.ext]``, the stem of ASCII letters, digits, ``_`` and ``-``.

    The last path component only (``/`` and ``\\`` both separate); the extension is kept when it is
    short and alphanumeric, and is the only dot left, so a name is never hidden, never ``..`` and
    never two names' worth of extensions. Returns "" when no stem is left.
    """
    base = re.split(r"[/\\]", text)[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot or not re.fullmatch(r"[A-Za-z0-9]{1,8}", suffix):
        stem, suffix = base, ""
    stem = re.sub(r"[^A-Za-z0-9-]+", "_", stem).strip("_-")
    if not stem:
        return ""
    suffix = f".{suffix.lower()}" if suffix else ""
    return stem[: MAX_NAME - len(suffix)].rstrip("_-") + suffix


def url_hash(url: str, length: int = 8) -> str:
    return hashlib.sha1(url.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _planned_base(item: Item) -> tuple[str, str]:
    """(stem, image extension or "") from the CSV's filename, else from the URL path."""
    name = (safe_name(item.name_hint) if item.name_hint else "") or safe_name(unquote(urlsplit(item.url).path))
    stem, _, ext = name.partition(".")
    ext = f".{ext}" if f".{ext}" in IMAGE_EXTENSIONS else ""  # else the format's, once the file is an image
    return (stem or "image"), ext


def plan_names(items: Sequence[Item]) -> dict[str, str]:
    """URL -> planned file name (without extension where the format decides it), for each distinct URL.

    Names are compared on their stem, case-insensitively, so that neither an added extension nor a
    case-insensitive file system can make two URLs share a file: every URL in a clash gets
    ``<stem>-<hash of URL>``, whatever the order of the list.
    """
    bases = {url: _planned_base(item) for url, item in first_of_each(items).items()}
    owners = Counter(stem.lower() for stem, _ in bases.values())
    taken = {stem.lower() for stem, _ in bases.values() if owners[stem.lower()] == 1}
    names = {}
    for url, (stem, ext) in bases.items():
        if owners[stem.lower()] > 1:
            length = 8
            while f"{stem}-{url_hash(url, length)}".lower() in taken:
                length += 4
            stem = f"{stem[: MAX_NAME - 50]}-{url_hash(url, length)}"
            taken.add(stem.lower())
        names[url] = stem + ext
    return names


def has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# --- one file ---------------------------------------------------------------------------------


def first_of_each(items: Iterable[Item]) -> dict[str, Item]:
    """URL -> the first item with it (the one that is downloaded; the others are its duplicates)."""
    first: dict[str, Item] = {}
    for item in items:
        if is_http_url(item.url):
            first.setdefault(item.url, item)
    return first
