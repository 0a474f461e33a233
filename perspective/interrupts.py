"""Ctrl-C that still works after a run was interrupted.

Lightning answers a KeyboardInterrupt with a graceful stop and, so that a second Ctrl-C cannot break
that stop, sets SIGINT to be ignored, and leaves it so. In a command the process ends there; in a
notebook or a program that trains again (a search's trials, an audit's folds, a test suite), Ctrl-C
would then do nothing, and every process started afterwards would inherit the ignored signal.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def keeps_ctrl_c(function: F) -> F:
    """``function`` with the SIGINT handler it found put back when it returns or raises."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():  # only the main thread owns signals
            return function(*args, **kwargs)
        handler = signal.getsignal(signal.SIGINT)
        try:
            return function(*args, **kwargs)
        finally:
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(signal.SIGINT, handler)

    return wrapper  # type: ignore[return-value]
