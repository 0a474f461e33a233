"""A real ``serve.py`` process on a free loopback port, for the server and fuzz tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import ROOT


@dataclass
class Server:
    proc: subprocess.Popen
    log_file: Path
    stderr: Path
    url: str = ""

    def wait_ready(self, timeout: float = 120) -> str:
        """Poll the log for the address (the server picks a free port) and then /health; returns the URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr.read_text()[-3000:]
            text = self.log_file.read_text() if self.log_file.exists() else ""
            found = re.search(r"serving on (http://\S+) ", text)
            if found:
                self.url = found.group(1)
                try:
                    if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                        return self.url
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready in {timeout} s: {self.stderr.read_text()[-3000:]}")

    def stop(self) -> int:
        """SIGTERM, then the exit code (0 for a clean stop)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_stopped()

    def wait_stopped(self, timeout: float = 20) -> int:
        """The exit code once the process has ended; killed (and the test failed) after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def log_lines(self, needle: str, count: int = 1, timeout: float = 5) -> list[str]:
        """Log lines containing ``needle``, waiting a little: the access line follows the response."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log_file.read_text().splitlines() if needle in line]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


def start_server(tmp: Path, *flags: str) -> Server:
    log_file, stderr = tmp / "api.log", tmp / "stderr.txt"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "serve.py"), "--port", "0", "--log-file", str(log_file), *flags],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=stderr.open("w"), env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return Server(proc, log_file, stderr)
