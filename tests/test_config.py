"""--config YAML files: keys are the long flag names with underscores, the command line wins, every
training run writes its resolved config.yaml, and that file repeats the run."""


import pandas as pd
import pytest
import yaml
from conftest import run_script

from perspective.cli import infer as infer_cli
from perspective.cli import pretrain as pretrain_cli
from perspective.cli import train as train_cli
from perspective.config import TrainConfig


def test_a_config_file_sets_flags_and_the_command_line_wins(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("max_epochs: 30\nweights: none\ntargets: [redness, greenness]\nstrict: true\n"
                      "learning_rate: 2e-3\ncheckpoint_dir: runs\n")
    args = train_cli.get_args_parser().parse_args(["--config", str(config), "-e", "5"])
    assert args.max_epochs == 5  # typed after the file: wins
    assert args.weights == "none" and args.targets == ["redness", "greenness"] and args.strict
    assert args.learning_rate == 2e-3 and args.checkpoints_location == "runs"  # an alias of the long name works too
    (tmp_path / "infer.yaml").write_text("image: [a.png, b.png]\nbatch_size: 4\ndevice: cpu\n")
    args = infer_cli.get_args_parser().parse_args(["--config", str(tmp_path / "infer.yaml")])
    assert args.image == ["a.png", "b.png"] and args.batch_size == 4 and args.device == "cpu"


@pytest.mark.parametrize("text, message", [
    ("max_epoch: 3\n", "unknown key 'max_epoch'"),
    ("max_epochs: 0\n", "must be at least 1"),  # the file's values pass the flags' own checks
    ("strict: maybe\n", "strict must be true or false"),
    ("- a\n- b\n", "expected a mapping"),
    ("a: [\n", "not valid YAML"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(text, message, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = run_script("train.py", "--config", str(config))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_run_writes_its_config_and_the_config_repeats_it(trained_regression, tmp_path):
    _, best = trained_regression
    written = best.parent / "config.yaml"
    values = yaml.safe_load(written.read_text())
    assert values["max_epochs"] == 10 and values["learning_rate"] == 2e-3 and values["batch_size"] == 8
    assert values["logger"] == "tensorboard,csv"
    assert "run_name" not in values and "resume" not in values  # a repeat gets its own folder
    args = train_cli.get_args_parser().parse_args(["--config", str(written)])
    repeated = TrainConfig(**{k: v for k, v in vars(args).items() if k != "config"})
    assert {k: getattr(repeated, k) for k in values} == values
    # tests/test_package.py trains with `perspective train --config` from another folder


def test_the_csv_logger_writes_a_row_per_epoch_with_every_epoch_metric(trained_regression):
    _, best = trained_regression
    logs = best.parent.parent.parent.parent / "logs" / "resnet18" / best.parent.name
    table = pd.read_csv(logs / "metrics.csv")
    assert list(table["epoch"]) == list(range(10))
    for column in ("train_loss_epoch", "val_loss", "val_mse", "val_r2", "lr-AdamW/head"):
        assert column in table.columns and table[column].notna().all(), (column, list(table.columns))
    assert not [c for c in table.columns if c.endswith("_step")]
    assert list(logs.glob("events.out.tfevents.*"))  # TensorBoard beside it


def test_a_logger_whose_package_is_missing_is_named_in_one_line(monkeypatch):
    import importlib.util

    from perspective.config import parse_loggers
    from perspective.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match=r"wandb needs the wandb package \(pip install wandb\)"):
        parse_loggers("tensorboard,wandb")
    with pytest.raises(UserError, match="unknown logger tb"):
        parse_loggers("tb")
    assert parse_loggers("none") == [] and parse_loggers("csv,csv") == ["csv"]


@pytest.mark.parametrize("value, accepted", [("0", True), ("1", True), ("0.5", True), ("1.5", False), ("-0.1", False)])
def test_pretrain_view_chances_take_0_to_1_inclusive(value, accepted, capsys):
    """A chance of 1 is a sure event (BYOL's own first view is always blurred); above 1 is a usage error."""
    parser = pretrain_cli.get_args_parser()
    if accepted:
        args = parser.parse_args(["-d", ".", "--blur-prob", value, "--hflip-prob", value])
        assert args.blur_prob == args.hflip_prob == float(value)
    else:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["-d", ".", "--blur-prob", value])
        assert exc.value.code == 2
        assert "between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize("value, accepted", [("1", True), ("0.1", True), ("0", False), ("1.5", False)])
def test_pseudo_share_takes_the_whole_pool_but_not_none_of_it(value, accepted, capsys):
    """--pseudo-share 1 teaches the student every unlabelled photo; 0 would teach it none."""
    parser = train_cli.get_args_parser()
    if accepted:
        assert parser.parse_args(["--pseudo-share", value]).pseudo_share == float(value)
    else:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["--pseudo-share", value])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--pseudo-share" in err and ("at most 1" in err or "more than 0" in err)
