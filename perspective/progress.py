"""Progress in words, for the lines long jobs write to a log (training epochs, bulk prediction, search trials)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``95`` -> ``1m35s``, ``4000`` -> ``1h06m``; ``?`` for an unknown (infinite or NaN) time."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
