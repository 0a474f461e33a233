"""The installable package: a wheel built from the checkout, installed in a fresh virtual environment,
runs the ``perspective`` command from another folder with its shipped model (package data).

Offline: the wheel is built without build isolation (the setuptools already installed), and the
environment sees the dependencies of the interpreter running the tests (its site-packages, through a
``.pth`` file: the same whether that interpreter is the system's Python or a virtual environment)
but not the checkout.
"""

import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pandas as pd
import pytest
import tomllib
from conftest import ROOT

import perspective
from perspective import home


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` folder of a fresh environment with the package installed from a wheel."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    for folder in ("perspective", "trained_models"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(source)], check=True, capture_output=True, text=True)
    env_dir = work / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    inner = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    (Path(inner) / "_test_dependencies.pth").write_text("\n".join(dependency_paths()) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels.glob("*.whl"))],
                   check=True, capture_output=True, text=True)
    return env_dir / "bin"


def dependency_paths() -> list[str]:
    """The site-packages folders of the interpreter running the tests (not the checkout)."""
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    return [f for f in dict.fromkeys(folders) if Path(f).is_dir() and Path(f).resolve() != ROOT]


def test_pyproject_lists_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "perspective").rglob("__init__.py")}
    assert listed == folders | {"perspective.trained_models"}


def test_the_wheel_installs_the_command_and_the_shipped_model(installed, tmp_path):
    where = subprocess.run([installed / "python", "-c", "import perspective; print(perspective.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(installed.parent), where  # the installed copy, not the checkout
    version = subprocess.run([installed / "perspective", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"perspective {perspective.__version__}"

    images = tmp_path / "photos"
    shutil.copytree(ROOT / "sample_set", images)
    (images / "labels.csv").unlink()
    result = subprocess.run([installed / "perspective", "infer", "-d", "photos", "-r", "out.csv", "-q"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(tmp_path / "out.csv")
    assert len(rows) == 24 and rows["error"].isna().all()


def test_the_installed_command_trains_from_a_config_file_in_another_folder(installed, regression_dir, tmp_path):
    (tmp_path / "run.yaml").write_text(f"data: {regression_dir}\nweights: none\nimage_size: 32\nbatch_size: 16\n"
                                       "workers: 0\naugment: none\nlogger: csv\n")
    result = subprocess.run([installed / "perspective", "train", "--config", "run.yaml", "-e", "1", "-q"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    best = Path(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: "))
    assert best.is_file() and best.is_relative_to(tmp_path / "checkpoints")
    assert (best.parent / "config.yaml").is_file() and (best.parent / "test_report" / "metrics.json").is_file()
    assert list((tmp_path / "lightning_logs" / "resnet18").glob("*/metrics.csv"))


def test_a_mistyped_command_is_one_line_and_exit_2(installed):
    result = subprocess.run([installed / "perspective", "trian"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown command 'trian'" in result.stderr and "train" in result.stderr


def test_the_built_in_data_goes_under_perspective_home_or_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_HOME", str(tmp_path / "home"))
    assert home.default_data_dir() == tmp_path / "home" / "data" / "synthetic"
    monkeypatch.delenv("PERSPECTIVE_HOME")
    assert home.default_data_dir() == ROOT / "data" / "synthetic"  # a writable checkout keeps it beside the code
    monkeypatch.setattr(home, "__file__", str(tmp_path / "site-packages" / "perspective" / "home.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert home.default_data_dir() == tmp_path / "cache" / "perspective" / "data" / "synthetic"
