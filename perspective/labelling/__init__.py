"""The data loop in Label Studio: ``select`` and ``audit`` send photos to a project as tasks with the
model's answers as pre-annotations (``tasks``), through the official client (``studio``), and
``perspective labels`` brings the finished annotations back as a labels.csv (``answers``)."""

from .answers import Answers, fetch_answers, interface_of, merged_values, write_labels
from .studio import Studio, connect, ensure_project, import_tasks, labelling_config, task_photos
from .tasks import audit_tasks, selection_tasks

__all__ = [
    "Answers", "Studio", "audit_tasks", "connect", "ensure_project", "fetch_answers", "import_tasks",
    "interface_of", "labelling_config", "merged_values", "selection_tasks", "send", "task_photos", "write_labels",
]


def send(studio: Studio, title: str, task: str, names, tasks: list[dict], folder) -> tuple[int, int]:
    """Make or update project ``title`` for ``task``'s ``names``, let it read ``folder``, and import ``tasks``
    (only photos it lacks): (imported, already there)."""
    project = ensure_project(studio, title, labelling_config(task, names), folder)
    return import_tasks(studio, project.id, tasks)
