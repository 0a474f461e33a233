"""Serve perspective predictions over HTTP: POST an image, get its scores back as JSON.

A checkout's shim for ``perspective serve`` (perspective/cli/serve.py): the same flags, run as
``python serve.py ...``.
"""

from perspective.cli.common import run
from perspective.cli.serve import main

if __name__ == "__main__":
    run(lambda: main(prog="serve.py"), "serve.py")
