"""search.py and perspective.search: tiny real searches (1-2 epochs at 32 px) and bad input.

The searches run in this process through search.py's own main() (a subprocess would add seconds of
imports per call); the exit-code path goes through perspective.cli.run as the script does.
"""

from __future__ import annotations

import io
import re
import shlex
import sys
from contextlib import redirect_stdout
from pathlib import Path

import optuna
import pandas as pd
import pytest
from synthetic import make_regression_set

from perspective.cli import search as search_cli
from perspective.cli import train as train_cli
from perspective.config import TrainConfig
from perspective.errors import UserError
from perspective.search import space as search_space
from perspective.search import study as search_lib
from perspective.search.settings import SearchConfig

# a deprecation inside Lightning, filtered by setup_logging in the scripts
pytestmark = pytest.mark.filterwarnings(r"ignore:.*isinstance\(treespec, LeafSpec\)")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPACE = """\
learning_rate: {low: 1e-4, high: 1e-2, log: true}   # PyYAML reads 1e-4 as a string; accepted
batch_size: [8, 16]
weight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}
dropout: {low: 0.0, high: 0.5}
loss: [mse, huber, weighted_mse]
augment: none
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_regression_set(tmp_path_factory.mktemp("search_data"), n=32, size=32)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(SPACE)
    return path


def fixed_flags(data: Path, space: Path, out: Path, epochs: int = 1) -> list[str]:
    return ["-d", str(data), "-o", str(out), "-e", str(epochs), "-w", "0", "--weights", "none",
            "--image-size", "32", "--space", str(space), "-q"]


def run_search_cli(capsys, *argv: str) -> list[str]:
    assert search_cli.main(list(argv)) == 0
    return capsys.readouterr().out.strip().splitlines()


@pytest.fixture(scope="module")
def first_search(tmp_path_factory, data, space):
    """stdout lines and OUTDIR of `search.py --trials 3 ...`."""
    out = tmp_path_factory.mktemp("search") / "out"
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert search_cli.main(["--trials", "3", *fixed_flags(data, space, out)]) == 0
    lines = buffer.getvalue().strip().splitlines()
    return lines, out


def test_tiny_search_writes_results_plots_and_a_valid_train_command(first_search, data):
    lines, out = first_search
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 3 and set(results["state"]) == {"COMPLETE"}
    for column in ("number", "state", "val_mse", "learning_rate", "batch_size", "weight_decay", "dropout",
                   "loss", "augment", "duration_s", "checkpoint"):
        assert column in results.columns
    # regression is judged by val_mse by default: val_loss values of different losses do not compare
    assert list(results["val_mse"]) == sorted(results["val_mse"]), "best first"
    assert set(results["augment"]) == {"none"} and set(results["batch_size"]) <= {8, 16}
    assert results["learning_rate"].between(1e-4, 1e-2).all()
    assert all(Path(p).is_file() for p in results["checkpoint"])
    assert (out / "optimization_history.png").stat().st_size > 0
    assert (out / "search.db").is_file()
    assert not list(out.glob("*.partial"))
    # every trial has its own TensorBoard folder under OUTDIR
    logs = sorted((out / "lightning_logs" / "resnet18").iterdir())
    assert [p.name for p in logs] == [f"search-trial{n:04d}" for n in range(3)]
    assert all(list(p.glob("events.out.tfevents.*")) for p in logs)

    best = results.iloc[0]
    assert lines[-4] == f"best checkpoint: {best['checkpoint']}"
    words = shlex.split(lines[-1])
    assert words[:2] == ["python", "train.py"]
    args = train_cli.get_args_parser().parse_args(words[2:])
    assert args.data == str(data) and args.weights == "none" and args.image_size == 32 and args.max_epochs == 1
    assert args.learning_rate == best["learning_rate"] and args.batch_size == best["batch_size"]
    assert args.loss == best["loss"] and args.augment == "none" and args.backbone == "resnet18"
    # the best trial's config.yaml says the same as its command
    assert lines[-2].startswith(f"its settings: {out / 'config.yaml'}")
    from_config = train_cli.get_args_parser().parse_args(["--config", str(out / "config.yaml")])
    assert {**vars(from_config), "config": None} == vars(args)


def test_second_call_adds_trials_to_the_same_study_and_its_command_trains(first_search, data, space, capsys,
                                                                           monkeypatch, tmp_path):
    _, out = first_search
    lines = run_search_cli(capsys, "--trials", "1", *fixed_flags(data, space, out))
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'search.db'}")
    assert len(study.trials) == 4
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["number"]) == [0, 1, 2, 3]
    assert "4 trials" in lines[0]

    # the printed command, run as train.py's main, trains without error
    words = shlex.split(lines[-1])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", *words[2:]])
    assert train_cli.main() == 0
    assert list((tmp_path / "checkpoints" / "resnet18").glob("*/last.ckpt"))


class PruneTrialZero(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.number == 0


def test_pruned_and_failed_trials_are_recorded_and_the_search_goes_on(data, space, tmp_path, monkeypatch, caplog):
    real_train = search_lib.train

    def out_of_memory_in_trial_one(cfg, callbacks=()):
        if cfg.run_name.endswith("trial0001"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real_train(cfg, callbacks)

    monkeypatch.setattr(search_lib, "train", out_of_memory_in_trial_one)
    out = tmp_path / "out"
    settings = SearchConfig(trials=3, output=str(out), space=space, sampler="random")
    base = TrainConfig(data=str(data), max_epochs=2, workers=0, weights="none", image_size=32, quiet=True,
                       checkpoints_location=None, logs_location=None)
    with caplog.at_level("INFO", logger="perspective.search"):
        result = search_lib.run_search(settings, base, pruner=PruneTrialZero())
    assert result.counts == {"pruned": 1, "fail": 1, "complete": 1}
    progress = [r.getMessage() for r in caplog.records if "of this search" in r.getMessage()]
    assert [m.split(":")[0] for m in progress] == [f"trial {i} of 3 of this search" for i in (1, 2, 3)]
    assert "#0 pruned" in progress[0] and "#1 fail" in progress[1] and "#2 complete" in progress[2]
    assert all("per trial, about" in m for m in progress)
    assert result.best.number == 2

    results = pd.read_csv(out / "results.csv").set_index("number")
    assert list(results.index) == [2, 0, 1] and list(results["state"]) == ["COMPLETE", "PRUNED", "FAIL"]
    assert results.loc[0, "epochs"] == 1, "the pruned trial stopped after its first of 2 epochs"
    assert results.loc[2, "epochs"] == 2
    assert "CUDA out of memory" in results.loc[1, "error"]
    assert pd.isna(results.loc[0, "checkpoint"]) and pd.isna(results.loc[1, "checkpoint"])


@pytest.mark.parametrize("extra, message", [
    (["--space", "{bad_space}"], "unknown parameter 'momentum'"),
    (["--metric", "val_accuracy"], "--metric val_accuracy: not a metric"),
    (["--metric", "val_acc"], "not a metric a regression run logs"),
    (["--storage", "sqlite:////nonexistent/folder/search.db"], "cannot open it"),
    (["--storage", "nosuchdb://x"], "cannot open it"),
    (["--devices", "2"], "one device"),
    (["-b", "nosuch"], "nosuch"),
    (["--flip-pairs", "left"], "--flip-pairs"),
    (["--space", "{latin1_space}"], "not a UTF-8 text file"),
    (["-o", "{bad_space}"], "cannot create the folder"),
])
def test_bad_input_exits_2_with_one_line_before_any_trial(extra, message, data, space, tmp_path, monkeypatch, capsys):
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\nmomentum: [0.9, 0.99]\n")
    latin1_space = tmp_path / "latin1.yaml"
    latin1_space.write_bytes("loss: [huber]  # r\u00e9gression\n".encode("latin-1"))
    out = tmp_path / "out"
    argv = ["--trials", "1", *fixed_flags(data, space, out),
            *[a.format(bad_space=bad_space, latin1_space=latin1_space) for a in extra]]
    monkeypatch.setattr(sys, "argv", ["search.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        search_cli.run(search_cli.main, "perspective search")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("perspective search: error: ") and message in err[0], err
    assert not (out / "results.csv").exists() and not (out / "checkpoints").exists()


def test_space_file_forms_and_errors(tmp_path):
    dists, _ = search_space.read_space({
        "learning_rate": {"low": "1e-5", "high": 1e-2, "log": True},
        "batch_size": {"low": 8, "high": 64, "step": 8},
        "loss": "huber",
        "backbone": ["resnet18", "efficientnet_b0"],
    })
    assert isinstance(dists["learning_rate"], optuna.distributions.FloatDistribution)
    assert dists["learning_rate"].low == 1e-5 and dists["learning_rate"].log
    assert isinstance(dists["batch_size"], optuna.distributions.IntDistribution) and dists["batch_size"].step == 8
    assert dists["loss"].choices == ("huber",)
    for bad, message in [
        ({"dropout": {"low": 0.0, "high": 1.5}}, "dropout must be in [0, 1)"),
        ({"loss": ["mse", "l3"]}, "loss must be one of"),
        ({"augment": {"low": 0, "high": 1}}, "takes a list of choices"),
        ({"batch_size": [8, 12.5]}, "batch_size must be an integer"),
        ({"learning_rate": {"low": 1e-3}}, "keys low, high"),
        ({"learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}, "learning_rate must be > 0"),
    ]:
        with pytest.raises(UserError, match=re.escape(message)):
            search_space.read_space(bad)
    (tmp_path / "broken.yaml").write_text("learning_rate: [1e-3\n")
    with pytest.raises(UserError, match="not valid YAML"):
        search_space.read_space(tmp_path / "broken.yaml")
    assert search_space.check_metric("val_r2") == "maximize" and search_space.check_metric("val_mae") == "minimize"
    assert search_space.check_metric("val_f1", "classification") == "maximize"


def test_typed_flags_are_kept_even_when_they_equal_the_default():
    cfg, given = search_cli.trial_settings(search_cli.get_args_parser().parse(["-w", "2", "-e", "1", "-b", "resnet18"]))
    assert given == {"workers": 2, "max_epochs": 1, "backbone": "resnet18"}
    assert cfg.checkpoints_location is None and cfg.logs_location is None  # the search puts them under OUTDIR


def test_train_command_is_exact_and_quoted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my data").mkdir()  # -d is checked while parsing
    command = search_lib.train_command({"data": "my data", "targets": ["a", "b"], "quiet": True, "resume": None,
                                        "learning_rate": 0.00012345678901234567, "batch_size": 16})
    words = shlex.split(command)
    args = train_cli.get_args_parser().parse_args(words[2:])
    assert args.data == "my data" and args.targets == ["a", "b"] and args.quiet
    assert args.learning_rate == 0.00012345678901234567 and args.batch_size == 16
