"""The flags that connect a command to a Label Studio server (``perspective select``, ``audit`` and
``labels``), declared once: the server's address, the project, the API token and the server's
local-files document root. Tokens come from the environment or the flag, never from a file here."""

from __future__ import annotations

from dataclasses import dataclass

from .flags import flag
from .shared import CommandConfig, output_flag
from .values import positive_int

LABEL_STUDIO = "Label Studio (needs pip install 'perspective[label-studio]')"  # the -h heading of these flags
API_KEY_ENV = "LABEL_STUDIO_API_KEY"  # where the token comes from when --label-studio-key is not given
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"  # the server's own setting, read here too


def label_studio_flag(required: bool = False):
    what = "the Label Studio server to bring labels from" if required else (
        "also send the photos to this Label Studio server as tasks with the model's scores (default: none)")
    return flag(None, what, metavar="URL", required=True if required else None, group=LABEL_STUDIO)


def project_flag(required: bool = False):
    return flag(None, "the Label Studio project, by title" + ("" if required else "; made if missing (default: the "
                                                             "command's name)"),
                metavar="NAME", required=True if required else None, group=LABEL_STUDIO)


def label_studio_key_flag():
    return flag(None, f"the API token (default: ${API_KEY_ENV})", metavar="TOKEN", group=LABEL_STUDIO)


def document_root_flag():
    return flag(None, f"the server's local-files document root, above the photos (default: ${DOCUMENT_ROOT_ENV}, as "
                      "the server reads it)", metavar="DIR", group=LABEL_STUDIO)


@dataclass
class LabelStudioConfig:
    """Where select and audit send their photos: nothing unless ``label_studio`` is given."""

    label_studio: str | None = label_studio_flag()
    project: str | None = project_flag()
    label_studio_key: str | None = label_studio_key_flag()
    document_root: str | None = document_root_flag()


@dataclass
class LabelsConfig(CommandConfig):
    """``perspective labels``: a Label Studio project's finished annotations as a labels.csv."""

    label_studio: str | None = label_studio_flag(required=True)
    project: str | None = project_flag(required=True)
    output: str = output_flag("labels.csv", "the labels CSV to write; train -d on its folder reads it")
    label_studio_key: str | None = label_studio_key_flag()
    document_root: str | None = document_root_flag()


SEND_COUNT = 50  # the audit's worst rows sent to a project


def send_count_flag():
    return flag(SEND_COUNT, "with --label-studio: the worst rows to send (default {default})", "-n", type=positive_int,
                group=LABEL_STUDIO)
