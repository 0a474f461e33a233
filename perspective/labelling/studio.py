"""A Label Studio server as the toolkit uses it, through the official client (``label-studio-sdk``, the
``label-studio`` extra): connect with a token, find or make a project with a labelling interface for the
model's targets or classes, give it access to the photos, and import tasks, each photo once.

Photos reach the server as Label Studio serves local files: the server runs with
``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and a document root above the photos
(``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``); a task's image is ``/data/local-files/?d=<path below the
root>``, and a local-files storage of the project on the photos' folder lets the project read them.

A task's ``photo`` field is that path below the root: it is what makes a second run add only photos
the project does not hold yet, and what ``answers`` turns back into a labels.csv row. Tasks are
imported in chunks, each with its pre-annotations in the same request, so a run that stops half way
(the server gone, Ctrl-C) leaves whole tasks behind, and the next run imports the rest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from ..config import API_KEY_ENV, DOCUMENT_ROOT_ENV
from ..errors import UserError

log = logging.getLogger(__name__)

IMAGE = "image"  # the Image tag's name, and the task field that holds the photo's URL
PHOTO = "photo"  # the task field that holds the photo's path below the document root
NOTE = "note"  # the task field shown above the photo: why it was sent
CLASS_FIELD = "label"  # the Choices tag's name for a classifier: the labels.csv column it fills
IMPORT_CHUNK = 100  # tasks an import request carries
PAGE = 100  # tasks a listing request reads
TIMEOUT = 60.0  # seconds a request may take
IMAGE_WIDTH = "480px"  # the photo's width in the labelling view: the number fields stay in sight below it


def require_client():
    """The SDK's client class, or a one-line error naming the extra."""
    try:
        from label_studio_sdk.client import LabelStudio
    except ImportError:
        raise UserError("--label-studio needs label-studio-sdk: pip install 'perspective[label-studio]'") from None
    return LabelStudio


@dataclass
class Studio:
    """A connected server: the client, its address, and the document root its local files are served from."""

    client: Any
    url: str
    root: Path

    def photo_of(self, path: str | os.PathLike) -> str:
        """``path`` below the document root, as a task names it; a path outside it is one line of error."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.root).as_posix()
        except ValueError:
            raise UserError(f"{path} is not below Label Studio's document root {self.root} ({DOCUMENT_ROOT_ENV}, "
                            "--document-root): start the server with a document root above the photos") from None

    def path_of(self, photo: str) -> Path:
        return self.root / photo


def describe(url: str, exc: Exception) -> str:
    """One line for what the server or the network said."""
    import httpx

    status = getattr(exc, "status_code", None)
    if status is not None:  # the SDK's ApiError
        body = getattr(exc, "body", None)
        detail = body.get("detail") or body.get("validation_errors") if isinstance(body, dict) else None
        if status == 401:
            return f"Label Studio at {url} refused the API token ({detail or 'HTTP 401'}): check ${API_KEY_ENV} or " \
                   "--label-studio-key (Account & Settings in Label Studio)"
        if detail is None:
            return f"{url} answered HTTP {status} without Label Studio's JSON: is it a Label Studio server's address?"
        return f"Label Studio at {url} answered HTTP {status}: {str(detail).splitlines()[0]}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach Label Studio at {url} ({str(exc).splitlines()[0] or 'connection refused'})"
    if isinstance(exc, httpx.TimeoutException):
        return f"Label Studio at {url} did not answer within {TIMEOUT:g} s"
    return f"talking to Label Studio at {url}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@contextmanager
def speaking_to(url: str) -> Iterator[None]:
    """Turn the client's and the network's errors into a one-line ``UserError``."""
    import httpx

    try:
        from label_studio_sdk.core.api_error import ApiError
    except ImportError:  # pragma: no cover - require_client ran first
        ApiError = ()  # noqa: N806
    try:
        yield
    except (ApiError, httpx.HTTPError) as exc:
        raise UserError(describe(url, exc)) from None


def connect(url: str, key: str | None = None, document_root: str | os.PathLike | None = None) -> Studio:
    """A checked connection: the token works (one request), and the document root is known."""
    client_class = require_client()
    key = key or os.environ.get(API_KEY_ENV)
    if not key:
        raise UserError(f"--label-studio {url}: no API token; set {API_KEY_ENV} or --label-studio-key (Label Studio: "
                        "Account & Settings)")
    root = document_root or os.environ.get(DOCUMENT_ROOT_ENV)
    if not root:
        raise UserError(f"--label-studio {url}: where does the server serve local files from? Set {DOCUMENT_ROOT_ENV} "
                        "as the server has it, or --document-root")
    if not Path(root).is_dir():
        raise UserError(f"--document-root {root}: not a folder")
    url = url.rstrip("/")
    client = client_class(base_url=url, api_key=key, timeout=TIMEOUT)
    with speaking_to(url):
        client.users.whoami()
    return Studio(client, url, Path(root).resolve())


def labelling_config(task: str, names: Sequence[str]) -> str:
    """The labelling interface: the photo, the note, and a number in [0, 1] per target or one choice of classes."""
    head = f'<View><Text name="{NOTE}" value="${NOTE}"/><Image name="{IMAGE}" value="${IMAGE}" maxWidth="{IMAGE_WIDTH}"/>'
    if task == "regression":
        fields = "".join(f"<Header value={quoteattr(n)}/><Number name={quoteattr(n)} toName=\"{IMAGE}\" min=\"0\" "
                         f"max=\"1\" step=\"0.01\"/>" for n in names)
    else:
        choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in names)
        fields = f'<Choices name="{CLASS_FIELD}" toName="{IMAGE}" choice="single" showInline="true">{choices}</Choices>'
    return head + fields + "</View>"


def find_project(studio: Studio, title: str) -> Any | None:
    """The project of exactly this title (the server's filter matches parts of titles), or None."""
    with speaking_to(studio.url):
        return next((p for p in studio.client.projects.list(title=title) if p.title == title), None)


def ensure_project(studio: Studio, title: str, config: str, folder: str | os.PathLike) -> Any:
    """The project ``title`` with ``config`` as its interface (made, or its interface updated), allowed to read
    the photos below ``folder`` (a local-files storage on it)."""
    project = find_project(studio, title)
    with speaking_to(studio.url):
        if project is None:
            project = studio.client.projects.create(title=title, label_config=config)
            log.info("Label Studio project %r made (id %s)", title, project.id)
        elif project.label_config != config:
            project = studio.client.projects.update(id=project.id, label_config=config)
            log.info("Label Studio project %r: labelling interface updated", title)
        folder = Path(folder).resolve()
        studio.photo_of(folder)  # below the root, or one line of error
        if folder == studio.root:
            raise UserError(f"the photos' folder {folder} is Label Studio's document root itself: the server reads "
                            "local files only from folders below it; start it with the parent folder as the root")
        storages = studio.client.import_storage.local.list(project=project.id)
        if not any(Path(s.path).resolve() == folder for s in storages):
            studio.client.import_storage.local.create(project=project.id, path=str(folder), use_blob_urls=True,
                                                      title=f"photos in {folder.name}")
    return project


def task_photos(studio: Studio, project_id: int) -> set[str]:
    """The photos the project's tasks hold already."""
    with speaking_to(studio.url):
        return {t.data.get(PHOTO) for t in studio.client.tasks.list(project=project_id, fields="task_only",
                                                                      page_size=PAGE)}


def image_url(photo: str) -> str:
    return "/data/local-files/?d=" + quote(photo)


def import_tasks(studio: Studio, project_id: int, tasks: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Import the tasks whose photo the project lacks, in chunks; (imported, already there)."""
    have = task_photos(studio, project_id)
    new = [t for t in tasks if t["data"][PHOTO] not in have]
    for start in range(0, len(new), IMPORT_CHUNK):
        chunk = list(new[start:start + IMPORT_CHUNK])
        with speaking_to(studio.url):
            studio.client.projects.import_tasks(id=project_id, request=chunk, return_task_ids=True)
        log.info("Label Studio: %d of %d new tasks imported", min(start + IMPORT_CHUNK, len(new)), len(new))
    return len(new), len(tasks) - len(new)
