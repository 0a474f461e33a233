"""One flag vocabulary: every command's parser, walked, spells each concept one way, with one meaning,
the same choices and the same default; its defaults are its config dataclass's; ``-h`` loads no heavy
library; and every ``python -m perspective.<module>`` named like a command runs it or says what to type.
"""

from __future__ import annotations

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
from perspective.cli.parser import CommandParser
from perspective.config.flags import Flag
from perspective.search.settings import SearchConfig, TrialConfig

# Flags that name something of their own command (what it writes, what it reads, in which format): the
# same spelling everywhere, each command's own declaration, default and choices.
OWN_VALUE = {"--output", "--data", "--seed", "--count", "--tolerance", "--timeout", "--format"}
# Flags spelled alike that take another kind of value on purpose, each its command's own declaration.
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
# Each command's configs, later ones refining earlier ones, as its parser is built from them.
CONFIGS = {"train": (config.TrainConfig,), "infer": (config.InferConfig,), "evaluate": (config.EvaluateConfig,),
           "serve": (config.ServeConfig,), "export": (config.ExportConfig,), "download": (config.DownloadConfig,),
           "synth": (config.SynthConfig,), "search": (TrialConfig, SearchConfig),
           "audit": (config.TrainConfig, config.AuditConfig), "pretrain": (config.PretrainConfig,),
           "select": (config.SelectConfig,), "labels": (config.LabelsConfig,)}


def parsers() -> dict[str, CommandParser]:
    return {c: importlib.import_module(f"perspective.cli.{c}").get_args_parser() for c in COMMANDS}


def flags(parser: CommandParser) -> dict[str, Flag]:
    """Each flag by its first long spelling (its name in the vocabulary)."""
    return {longs[0]: f for f in parser.flags if (longs := [o for o in f.options if o.startswith("--")])}


def declared_defaults(command: str, name: str) -> set:
    """The defaults the configs of ``command`` and their base classes write for field ``name``."""
    found = set()
    for cls in CONFIGS[command]:
        for klass in cls.__mro__:
            field = vars(klass).get("__dataclass_fields__", {}).get(name)
            if field is not None and name in vars(klass).get("__annotations__", {}):
                found.add(repr(field.default_factory() if field.default is dataclasses.MISSING else field.default))
    return found


def test_every_concept_is_spelled_one_way_with_one_meaning_choices_and_default():
    """A flag two commands share has one spelling, one kind of value and the same choices; its default
    differs only where a command's config writes another one for it (a refinement, with its reason)."""
    seen: dict[str, tuple[str, Flag]] = {}
    shorts: dict[str, set[str]] = {}
    problems = []
    for command, parser in parsers().items():
        for name, flag in flags(parser).items():
            if name in ALIASES:
                problems.append(f"{command}: {name} is an old spelling; the flag is {ALIASES[name]}")
            for option in flag.options:
                if option in ALIASES and ALIASES[option] != name:
                    problems.append(f"{command}: {option} is an alias of {name}, not of {ALIASES[option]}")
                if not option.startswith("--"):
                    shorts.setdefault(option, set()).add(name)
            if name not in seen:
                seen[name] = (command, flag)
                continue
            first, other = seen[name]
            mine = sorted(o for o in flag.options if not o.startswith("--") and o not in SHORT_ALIASES)
            theirs = sorted(o for o in other.options if not o.startswith("--") and o not in SHORT_ALIASES)
            if mine != theirs:
                problems.append(f"{name}: short flags {mine} in {command}, {theirs} in {first}")
            if flag.choices != other.choices and name not in OWN_VALUE:
                problems.append(f"{name}: choices {flag.choices} in {command}, {other.choices} in {first}")
            other_kind = (name, command) in KIND_DIFFERS or (name, first) in KIND_DIFFERS or name in OWN_VALUE
            if (flag.switch, flag.nargs, flag.type) != (other.switch, other.nargs, other.type) and not other_kind:
                problems.append(f"{name}: another kind of value in {command} than in {first}")
            refined = len(declared_defaults(command, flag.name) | declared_defaults(first, other.name)) > 1
            if flag.default != other.default and not refined and not other_kind:
                problems.append(f"{name}: default {flag.default!r} in {command}, {other.default!r} in {first}, and "
                                "neither config writes it")
    for short, names in shorts.items():
        if len(names) > 1 and names != SHORT_SHARED.get(short):
            problems.append(f"{short} means {sorted(names)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_the_shared_flags(command):
    parser = importlib.import_module(f"perspective.cli.{command}").get_args_parser()
    names = flags(parser)
    assert "--config FILE.yaml" in parser.format_help() and names["--quiet"].options == ("-q", "--quiet")
    if command in ("infer", "evaluate", "serve", "export"):
        assert names["--checkpoint"].options[:2] == ("-c", "--checkpoint")
    if command in ("train", "pretrain", "infer", "evaluate", "serve", "search", "audit"):
        assert names["--precision"].choices == config.PRECISIONS and names["--precision"].default == "auto"
        assert {"--gpus", "--accelerator", "--batch-size", "--workers"} <= set(names)
        assert names["--gpus"].options == ("-g", "--gpus")
    if command in ("train", "pretrain", "infer", "evaluate", "search", "audit"):
        assert {"--devices", "--num-nodes", "--strategy"} <= set(names)
        assert names["--strategy"].default == "auto"
    if command not in ("train", "serve"):
        assert names["--output"].options[:2] == ("-o", "--output")


@pytest.mark.parametrize("command", COMMANDS)
def test_the_parser_reads_its_defaults_from_the_commands_config(command):
    parser = importlib.import_module(f"perspective.cli.{command}").get_args_parser()
    fields = {f.name: f for cls in CONFIGS[command] for f in dataclasses.fields(cls)}  # later configs win
    checked = 0
    for flag in parser.flags:
        field = fields[flag.name]
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        if flag.switch:  # a switch: off unless typed
            assert default is False, (command, flag.name)
        assert flag.default == default, (command, flag.name, flag.default, default)
        checked += 1
    assert checked >= 4


def test_a_parse_holds_the_typed_flags_and_the_configs_defaults():
    """One parse says what was typed (a search repeats it) and fills the rest from the config."""
    parser = importlib.import_module("perspective.cli.train").get_args_parser()
    parsed = parser.parse(["-e", "20", "--strict", "--weights=none"])
    assert parsed.typed == {"max_epochs": 20, "strict": True, "weights": "none"}
    cfg = parsed.config(config.TrainConfig)
    assert cfg == config.TrainConfig(max_epochs=20, strict=True, weights="none")


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
