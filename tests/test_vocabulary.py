"""One flag vocabulary: every command's parser, walked, spells each concept one way, with one meaning,
the same choices and the same default; its defaults are its config dataclass's; ``-h`` loads no heavy
library; and every ``python -m perspective.<module>`` named like a command runs it or says what to type.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pkgutil
import re
import subprocess
import sys

import pytest
from conftest import ROOT

import perspective
from perspective import config
from perspective.cli.__main__ import COMMANDS

# Per-command defaults that differ on purpose, with the reason (-h says it too).
DEFAULT_DIFFERS = {
    ("--batch-size", "serve"): "a server batch answers when its slowest upload is decoded: smaller",
    ("--workers", "train"): "DataLoader processes: fewer when the CPU trains (config.default_loader_workers)",
    ("--workers", "search"): "train's",
    ("--workers", "audit"): "train's",
    ("--workers", "download"): "downloads wait on the network, not on the cores",
    ("--max-epochs", "audit"): "each fold's run is short (config.AuditConfig)",
    ("--checkpoint-dir", "search"): "under the search's output folder",
    ("--logs-location", "search"): "under the search's output folder",
    ("--max-pixels", "download"): "",  # the same limit; listed only for its different help
    ("--batch-size", "pretrain"): "a contrastive batch compares each image with every other: larger",
    ("--max-epochs", "pretrain"): "pretraining on unlabelled photos takes longer than fine-tuning",
    ("--weights", "pretrain"): "self-supervised pretraining starts from random weights",
}
# Flags that name something of their own command (what it writes, what it reads, in which format): the
# same spelling everywhere, with the command's own default and choices.
OWN_VALUE = {"--output", "--data", "--seed", "--count", "--tolerance", "--timeout", "--format"}
# Values of another kind on purpose, with the reason.
KIND_DIFFERS = {
    ("--resume", "train"): "a training run resumes from a checkpoint it names (alone: the newest last.ckpt)",
    ("--workers", "download"): "at least one download at a time",
    ("--calibrate", "audit"): "the audit stores its out-of-fold calibration in a checkpoint it names",
}
SHORT_ALIASES = {"-r"}  # infer's -r/--result-csv, the original scripts' spelling of -o
# The original scripts' spellings, kept only as aliases beside the vocabulary's flag.
ALIASES = {"--out": "--output", "--outdir": "--output", "--result-csv": "--output", "--directory": "--data",
           "--max-batch": "--batch-size", "--checkpoints-location": "--checkpoint-dir"}
# One short flag, two meanings, on purpose: train's -c is its checkpoint folder (the original scripts' habit).
SHORT_SHARED = {"-c": {"--checkpoint", "--checkpoint-dir"}}
CONFIGS = {"train": config.TrainConfig, "infer": config.InferConfig, "evaluate": config.EvaluateConfig,
           "serve": config.ServeConfig, "export": config.ExportConfig, "download": config.DownloadConfig,
           "synth": config.SynthConfig, "search": config.TrainConfig, "audit": config.TrainConfig,
           "pretrain": config.PretrainConfig, "select": config.SelectConfig}


def parsers() -> dict[str, argparse.ArgumentParser]:
    return {c: importlib.import_module(f"perspective.cli.{c}").get_args_parser() for c in COMMANDS}


def flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each action by its first long flag (its name in the vocabulary)."""
    out = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and not isinstance(action, argparse._HelpAction):
            out[longs[0]] = action
    return out


def test_every_concept_is_spelled_one_way_with_one_meaning_choices_and_default():
    seen: dict[str, tuple[str, argparse.Action]] = {}
    shorts: dict[str, set[str]] = {}
    problems = []
    for command, parser in parsers().items():
        for name, action in flags(parser).items():
            if name in ALIASES:
                problems.append(f"{command}: {name} is an old spelling; the flag is {ALIASES[name]}")
            for option in action.option_strings:
                if option in ALIASES and ALIASES[option] != name:
                    problems.append(f"{command}: {option} is an alias of {name}, not of {ALIASES[option]}")
                if not option.startswith("--"):
                    shorts.setdefault(option, set()).add(name)
            if name not in seen:
                seen[name] = (command, action)
                continue
            first, other = seen[name]
            mine = sorted(o for o in action.option_strings if not o.startswith("--") and o not in SHORT_ALIASES)
            theirs = sorted(o for o in other.option_strings if not o.startswith("--") and o not in SHORT_ALIASES)
            if mine != theirs:
                problems.append(f"{name}: short flags {mine} in {command}, {theirs} in {first}")
            if action.choices != other.choices and name not in OWN_VALUE:
                problems.append(f"{name}: choices {action.choices} in {command}, {other.choices} in {first}")
            other_kind = (name, command) in KIND_DIFFERS or (name, first) in KIND_DIFFERS or name in OWN_VALUE
            if (type(action) is not type(other) or action.type is not other.type) and not other_kind:
                problems.append(f"{name}: another kind of value in {command} than in {first}")
            differs = (name, command) in DEFAULT_DIFFERS or (name, first) in DEFAULT_DIFFERS or name in OWN_VALUE
            if action.default != other.default and not differs and not other_kind:
                problems.append(f"{name}: default {action.default!r} in {command}, {other.default!r} in {first}")
    for short, names in shorts.items():
        if len(names) > 1 and names != SHORT_SHARED.get(short):
            problems.append(f"{short} means {sorted(names)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_the_shared_flags(command):
    parser = importlib.import_module(f"perspective.cli.{command}").get_args_parser()
    names = flags(parser)
    assert "--config" in names and names["--quiet"].option_strings == ["-q", "--quiet"]
    if command in ("infer", "evaluate", "serve", "export"):
        assert names["--checkpoint"].option_strings[:2] == ["-c", "--checkpoint"]
    if command in ("train", "pretrain", "infer", "evaluate", "serve", "search", "audit"):
        assert names["--precision"].choices == config.PRECISIONS and names["--precision"].default == "auto"
        assert {"--gpus", "--accelerator", "--batch-size", "--workers"} <= set(names)
        assert names["--gpus"].option_strings == ["-g", "--gpus"]
    if command in ("train", "pretrain", "infer", "evaluate", "search", "audit"):
        assert {"--devices", "--num-nodes", "--strategy"} <= set(names)
        assert names["--strategy"].default == "auto"
    if command not in ("train", "serve"):
        assert names["--output"].option_strings[:2] == ["-o", "--output"]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_parser_reads_its_defaults_from_the_commands_config(command):
    parser = importlib.import_module(f"perspective.cli.{command}").get_args_parser()
    fields = {f.name: f for f in dataclasses.fields(CONFIGS[command])}
    checked = 0
    for action in parser._actions:
        field = fields.get(action.dest)
        name = next((o for o in action.option_strings if o.startswith("--")), action.dest)
        if field is None or (name, command) in DEFAULT_DIFFERS:
            continue
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        if action.nargs == 0:  # a switch: off unless typed
            assert default is False, (command, name)
        elif not action.required:
            assert action.default == default, (command, name, action.default, default)
        checked += 1
    assert checked >= 4


def help_text(command: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``perspective <command> -h`` as an 80-column terminal shows it."""
    monkeypatch.setenv("COLUMNS", "80")
    return importlib.import_module(f"perspective.cli.{command}").get_args_parser(f"perspective {command}").format_help()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_two_screens(command, monkeypatch):
    lines = help_text(command, monkeypatch).splitlines()
    assert len(lines) <= 120, f"perspective {command} -h has {len(lines)} lines at 80 columns"
    assert lines[0].startswith(f"usage: perspective {command} ") and len(lines[0]) <= 80, lines[0]


# A measured result in a help text: the words of a result, a spread, a throughput, a duration, a share,
# the hardware it ran on, or a figure with two or more decimals outside the flag's "(default ...)" and
# outside a pointer to the docs page that holds the measurements ("measured effects: docs/training.md").
MEASURED = re.compile(r"measur|±|\+-|images/s|\d\s*%|\b\d+ seeds?\b|\b(?:R2|R²|accuracy|acc)\s*[+-]?\d"
                      r"|\b\d[\d,.]*\s*(?:ms|s|sec|seconds|min|minutes|h|hours)\b|H100|H200|A100|EPYC|Xeon|CPU cores?"
                      r"|\d\.\d\d", re.IGNORECASE)
DEFAULT_NOTE = re.compile(r"\(default[: ](?:[^()]|\([^()]*\))*\)")
DOCS_POINTER = re.compile(r"[\w ,']*: docs/[\w/.#-]+")


def measured_figures(text: str) -> list[str]:
    """What in ``text`` reads as a measured result; defaults, ``(default 0.0001)``, are settings."""
    return MEASURED.findall(DOCS_POINTER.sub("", DEFAULT_NOTE.sub("", " ".join(text.split()))))


def test_the_measured_figure_check_finds_results_and_passes_defaults():
    assert measured_figures("Measured on 500 photos: light 0.796, strong 0.763 (default light)")
    assert measured_figures("fixmatch 0.852 against 0.846 (3 seeds)")
    assert measured_figures("-e 100 took 68 min of one CPU core, 167 s on an H200")
    assert measured_figures("byol's momentum copy costs 27% more time")
    assert not measured_figures("weighted_mse weighs errors by alpha + target (default 0.03333)")
    assert not measured_figures("chance of a blurred view (default: the method's own, 0.5; byol 1.0 and 0.1)")
    assert not measured_figures("seconds between heartbeats (default 60); 3x as many unlabelled photos")
    assert not measured_figures("Guide and measured effects of the flags: docs/training.md")
    assert measured_figures("Measured on cars: docs/training.md has more; R2 0.198 from simclr")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_quotes_no_measured_figure(command, monkeypatch):
    found = measured_figures(help_text(command, monkeypatch))
    assert not found, f"perspective {command} -h quotes measurements {found}; they belong in docs/"


def test_the_cli_package_docstring_names_every_command():
    import perspective.cli

    missing = [c for c in COMMANDS if f"``{c}``" not in perspective.cli.__doc__]
    assert not missing, f"perspective/cli/__init__.py's docstring does not name {missing}"


HEAVY = ("torch", "optuna", "httpx", "PIL", "pytorch_lightning", "pandas", "matplotlib")


def test_no_parser_imports_a_heavy_library():
    """Building every parser and its -h imports none of torch, optuna, httpx, PIL (nor Lightning, pandas)."""
    code = (f"import sys, importlib\nfor c in {list(COMMANDS)!r}:\n"
            "    importlib.import_module(f'perspective.cli.{c}').get_args_parser().format_help()\n"
            "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in " + repr(HEAVY) + ")))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(result.stdout) == []


def command_modules() -> list[str]:
    """Every module of the package whose name is a command's (``perspective.synth``, ``perspective.trust.audit``, ...)."""
    found = []
    for info in pkgutil.walk_packages(perspective.__path__, "perspective."):
        if info.name.rsplit(".", 1)[-1] in COMMANDS:
            found.append(info.name)
    return found


def test_the_modules_named_like_commands_are_found():
    names = command_modules()
    for expected in ("perspective.synth", "perspective.download", "perspective.search", "perspective.export",
                     "perspective.trust.audit", "perspective.training.pretrain", "perspective.cli.train"):
        assert expected in names


@pytest.mark.parametrize("module", command_modules())
def test_python_dash_m_of_a_command_module_runs_it_or_says_what_to_type(module):
    result = subprocess.run([sys.executable, "-m", module, "-h"], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    if result.returncode == 0:
        assert result.stdout.startswith("usage: "), result.stdout[:200]
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "perspective " in lines[0], result.stderr


def test_the_previous_releases_spellings_are_not_silent(tmp_path):
    synth = subprocess.run([sys.executable, "-m", "perspective.synth", "--out", str(tmp_path / "d"), "--count", "5"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert synth.returncode == 2 and len(synth.stderr.strip().splitlines()) == 1 and "--seed" in synth.stderr
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:1/a.jpg\n")  # refused at once: a broken link
    download = subprocess.run([sys.executable, "-m", "perspective.download", str(tmp_path / "urls.txt"), "--out",
                               str(tmp_path / "out"), "-q"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert download.returncode == 1 and "no file could be downloaded" in download.stderr
    assert (tmp_path / "out" / "manifest.csv").is_file()
