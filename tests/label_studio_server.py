"""A real Label Studio server for the data-loop tests: the ``label-studio`` program (installed by ``.ci/run`` in
a virtual environment of its own, named by ``PERSPECTIVE_LABEL_STUDIO``, or on the PATH), started on
127.0.0.1 at a free port with a throwaway data folder and a user made for the test, stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PROGRAM = os.environ.get("PERSPECTIVE_LABEL_STUDIO") or shutil.which("label-studio")
EMAIL, PASSWORD = "annotator@example.com", "a-test-password-1"
TOKEN = "perspective0test0token0000000000000000000"  # the user's legacy API token, set at the first start
# the server reads bare HOST, PORT, USERNAME, ... too: the caller's must not leak into it
LEAKING = ("HOST", "PORT", "USERNAME", "PASSWORD", "USER_TOKEN", "DEBUG", "DATABASE_NAME")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabelStudioServer:
    data: Path  # its database and media
    root: Path  # the local-files document root: the photos live below it
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300) -> LabelStudioServer:
        env = {k: v for k, v in os.environ.items() if k not in LEAKING}
        env.update(LABEL_STUDIO_BASE_DATA_DIR=str(self.data), DJANGO_DB="sqlite",
                   LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true", LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(self.root),
                   LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false", SENTRY_DSN="", FRONTEND_SENTRY_DSN="")
        command = [PROGRAM, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(self.data), "--username", EMAIL, "--password", PASSWORD, "--user-token", TOKEN,
                   "--enable-legacy-api-token"]
        log = open(self.data / "server.log", "ab")
        self.proc = subprocess.Popen(command, env=env, cwd=self.data, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    # a busy port makes the server take the next one: the answer must be this server's
                    assert f"127.0.0.1:{self.port}/" in (self.data / "server.log").read_text()
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"Label Studio not ready in {timeout} s: {(self.data / 'server.log').read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGINT (its clean stop), then harder signals; by the PID it was started with."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return


def start_label_studio(folder: Path) -> LabelStudioServer:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "root").mkdir(exist_ok=True)
    return LabelStudioServer(folder / "data", folder / "root", free_port()).start()
