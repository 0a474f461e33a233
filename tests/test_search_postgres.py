"""Searches on a real PostgreSQL server: workers started at the same instant, a study continued from
another process, a killed worker's trial retried, and the same results as SQLite.

The server is Debian's ``postgresql`` package, started here in a temporary folder (``initdb``, a Unix
socket, a free port) and stopped afterwards; the tests are skipped where its binaries are missing
(``.ci/run`` installs the package as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_command
from synthetic import make_regression_set

pytestmark = pytest.mark.filterwarnings(r"ignore:.*isinstance\(treespec, LeafSpec\)")

SPACE = "learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\nbatch_size: [8, 16]\naugment: none\n"


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A throwaway PostgreSQL server: its own data folder, socket folder and port, trust authentication."""

    def __init__(self, root: Path):
        self.bin, self.root, self.port = postgres_bin(), root, free_port()
        self.data, self.socket = root / "data", root / "socket"
        self.socket.mkdir(parents=True)
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_user:  # initdb refuses to run as root
            shutil.chown(root, "postgres")
            shutil.chown(self.socket, "postgres")
        self.user = "postgres" if as_user else os.environ.get("USER", "postgres")
        self.prefix = as_user
        subprocess.run([*as_user, str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True)
        subprocess.run([*as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(root / "server.log"),
                        "-o", f"-p {self.port} -k {self.socket} -c listen_addresses=''", "-w", "start"],
                       check=True, capture_output=True)
        self.databases = 0

    def new_database(self) -> str:
        """A fresh database's URL (the plain postgresql:// spelling; psycopg 3 is the driver)."""
        self.databases += 1
        name = f"study{self.databases}"
        subprocess.run([*self.prefix, str(self.bin / "createdb"), "-h", str(self.socket), "-p", str(self.port),
                        "-U", self.user, name], check=True, capture_output=True)
        return f"postgresql://{self.user}@/{name}?host={self.socket}&port={self.port}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if postgres_bin() is None:
        pytest.skip("needs Debian's postgresql package (.ci/run installs it as root)")
    pytest.importorskip("psycopg")
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="perspective-pg-"))  # under /tmp: pytest's own folders are root's alone
    running = Server(root)
    yield running
    running.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_regression_set(tmp_path_factory.mktemp("pg_data"), n=32, size=32)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pg_space") / "space.yaml"
    path.write_text(SPACE)
    return path


def search_args(data: Path, space: Path, out: Path, storage: str, trials: int, *extra: str) -> list[str]:
    return ["-d", str(data), "-o", str(out), "-e", "1", "-w", "0", "--weights", "none", "--image-size", "32",
            "--space", str(space), "--sampler", "random", "-q", "--storage", storage, "--study", "s",
            "--trials", str(trials), *extra]


def search_command(*args, **kwargs) -> list[str]:
    """``perspective search`` with ``search_args`` in a process of its own."""
    return [sys.executable, "-m", "perspective", "search", *search_args(*args, **kwargs)]


def start_together(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start every command at the same instant (as a cluster launches its workers) and wait for all."""
    processes = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for c in commands]
    results = []
    for command, process in zip(commands, processes):
        out, err = process.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def trials_of(storage: str) -> list:
    import optuna

    from perspective.search.study import storage_url

    return optuna.load_study(study_name="s", storage=storage_url(storage)).trials


def test_workers_started_together_on_a_fresh_database_all_run(server, data, space, tmp_path):
    workers = 2
    storage = server.new_database()
    results = start_together([search_command(data, space, tmp_path / f"w{i}", storage, 2) for i in range(workers)])
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    trials = trials_of(storage)
    assert len(trials) == 2 * workers  # each worker's two trials, none lost
    assert sorted(t.number for t in trials) == list(range(2 * workers))  # none twice
    assert {t.state.name for t in trials} == {"COMPLETE"}
    third = subprocess.run(search_command(data, space, tmp_path / "third", storage, 1), cwd=ROOT,
                           capture_output=True, text=True, timeout=600)  # --study continues it from another process
    assert third.returncode == 0 and f"{2 * workers + 1} trials" in third.stdout, third.stderr[-2000:]


def test_a_killed_workers_trial_is_marked_failed_and_retried(server, data, space, tmp_path):
    import optuna

    storage = server.new_database()
    killed = subprocess.Popen(search_command(data, space, tmp_path / "a", storage, 1, "-e", "40", "--heartbeat", "1"),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if [t for t in trials_of(storage) if t.state.name == "RUNNING"]:
                break
        except Exception:  # noqa: BLE001 - the study does not exist yet
            pass
        time.sleep(0.5)
    time.sleep(3)  # a few heartbeats into its trial
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    time.sleep(6)  # past the grace period of 5 heartbeats
    result = subprocess.run(search_command(data, space, tmp_path / "b", storage, 1, "--heartbeat", "1"), cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = {t.number: t for t in trials_of(storage)}
    assert trials[0].state.name == "FAIL"  # the killed worker's trial, marked by the heartbeat
    retried = [t for t in trials.values()
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 0]
    assert retried and retried[0].state.name == "COMPLETE" and retried[0].params == trials[0].params


def test_results_and_the_best_command_match_sqlite(server, data, space, tmp_path):
    storage = server.new_database()
    for _call in ("first", "continued"):
        result = subprocess.run(search_command(data, space, tmp_path / "pg", storage, 2), cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    assert "4 trials" in result.stdout and len(trials_of(storage)) == 4
    sqlite = f"sqlite:///{tmp_path / 'sqlite.db'}"
    for _call in ("first", "continued"):
        reference = subprocess.run(search_command(data, space, tmp_path / "lite", sqlite, 2), cwd=ROOT,
                                   capture_output=True, text=True, timeout=600)
        assert reference.returncode == 0, reference.stderr[-2000:]
    compared = ["number", "state", "val_mse", "learning_rate", "batch_size", "epochs"]
    on_postgres = pd.read_csv(tmp_path / "pg" / "results.csv")
    on_sqlite = pd.read_csv(tmp_path / "lite" / "results.csv")
    pd.testing.assert_frame_equal(on_postgres[[c for c in compared if c in on_postgres]],
                                  on_sqlite[[c for c in compared if c in on_sqlite]])
    assert result.stdout.strip().splitlines()[-1] == reference.stdout.strip().splitlines()[-1]  # the best command


def test_an_unreachable_database_is_one_line(data, space, tmp_path):
    # in this process: the refusal comes before any trial
    result = run_command("search", *search_args(data, space, tmp_path, f"postgresql://me@127.0.0.1:{free_port()}/nodb", 1))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach the database nodb on 127.0.0.1" in result.stderr
    spelled = run_command("search", *search_args(data, space, tmp_path, "postgresql+psycopg2://me@127.0.0.1/x", 1))
    assert spelled.returncode == 2 and "write postgresql://" in spelled.stderr
