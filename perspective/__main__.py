"""``python -m perspective <command>``: the same as the ``perspective`` command."""

from .cli.__main__ import main

main()
