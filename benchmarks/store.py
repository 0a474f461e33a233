"""The results store: every benchmark's figures, each with the setting that produced it.

One JSON Lines file per benchmark under ``benchmarks/results/`` (``recipe.jsonl``, ``infer.jsonl``,
...), one line per measurement, in one schema::

    {"benchmark": "recipe",                      # the script that measured it
     "case": {"dataset": "digits", ...},         # what was measured: the settings that tell cases apart
     "seed": 42,                                 # null where the measurement has no seed
     "figures": {"test": 0.985, "seconds": 67},  # the measured figures
     "precision": "bf16-mixed",                  # the arithmetic it ran in
     "command": "python benchmarks/...",         # the exact command, from the repository's root
     "run": "20261207T191005-4711",              # rows of one invocation share it
     "date": "2026-12-07T19:10:05Z", "commit": "7f16506...", "dirty": false,
     "versions": {"python": "3.11.7", "torch": "2.14.1", ...},
     "machine": {"cpu": "AMD EPYC", "cores": 2, "isa": ["avx2", "avx512_bf16", ...], "gpu": null},
     "recorded": "measured"}                     # or "migrated: ..." for rows older than the store

As pytest-benchmark and asv do, the machine is read at run time (CPU model, cores, the instruction
sets that decide the precision and the int8 kernels, the GPU), and the commit and library versions
beside it, so two figures can be compared only when their settings say they may. The docs' measured
tables are generated from these files by ``docs/results_tables.py``.

Rows are appended one ``write`` per line, so benchmarks running side by side never interleave them.
This module imports nothing heavy: torch is consulted only when it is already imported.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# The instruction sets that decide a CPU's speed here: bf16 autocast (AVX-512 BF16, AMX) and the int8
# kernels (VNNI, AMX). /proc/cpuinfo spells them this way.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
VERSIONED = {"torch": "torch", "torchvision": "torchvision", "lightning": "pytorch-lightning",
             "openvino": "openvino", "onnxruntime": "onnxruntime", "timm": "timm"}


def _cpu() -> tuple[str, list[str]]:
    """The CPU's model name and its ISA_FLAGS, from /proc/cpuinfo (Linux) or platform (elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.machine(), [f for f in ISA_FLAGS if f in flags]


def _gpu() -> str | None:
    """The first CUDA GPU's name, when torch is loaded and sees one (benchmarks that use a GPU load torch)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def machine() -> dict[str, Any]:
    """The machine as measured now: CPU model, the cores this process may use, ISA flags, GPU."""
    cpu, isa = _cpu()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "isa": isa, "gpu": _gpu()}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name, distribution in VERSIONED.items():
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def commit() -> tuple[str | None, bool | None]:
    """HEAD's id and whether tracked files differ from it (the results store itself aside)."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None, None
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return head, bool(changed)


SCRATCH_FLAGS = ("--workdir",)  # where a benchmark keeps its scratch data: no part of what it measured


def command_line(argv: list[str] | None = None) -> str:
    """The command that runs this process, from the repository's root: ``python benchmarks/bench_x.py ...``,
    without the scratch folder (``SCRATCH_FLAGS``), which changes no figure and names a path of one machine."""
    argv = list(sys.argv if argv is None else argv)
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in SCRATCH_FLAGS:
            skip = True
        elif not word.startswith(tuple(f"{flag}=" for flag in SCRATCH_FLAGS)):
            kept.append(word)
    argv = kept
    script = Path(argv[0]).resolve() if argv else None
    if script is not None and script.is_file():
        try:
            argv[0] = str(script.relative_to(ROOT))
        except ValueError:
            argv[0] = str(script)
        argv = ["python", *argv]
    return " ".join(_shell_word(word) for word in argv)


def _shell_word(word: str) -> str:
    """A word as a person types it: ``--extra="--flip-pairs none"`` rather than ``'--extra=--flip-pairs none'``."""
    flag, equals, value = word.partition("=")
    if equals and flag.startswith("--") and shlex.quote(flag) == flag and shlex.quote(value) != value:
        return f'{flag}="{value}"' if '"' not in value and "$" not in value and "`" not in value else shlex.quote(word)
    return shlex.quote(word)


@cache
def setting() -> dict[str, Any]:
    """What every row of this process shares: when, which code, which libraries, which machine, which command."""
    now = dt.datetime.now(dt.timezone.utc)
    head, dirty = commit()
    return {
        "command": command_line(),
        "run": f"{now:%Y%m%dT%H%M%S}-{os.getpid()}",
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": head,
        "dirty": dirty,
        "versions": versions(),
        "machine": machine(),
    }


def results_file(benchmark: str) -> Path:
    return RESULTS / f"{benchmark}.jsonl"


def record(benchmark: str, case: dict[str, Any], figures: dict[str, Any], *, seed: int | None = None,
           precision: str | None = None, path: str | os.PathLike | None = None, **setting_overrides: Any) -> dict:
    """Append one measurement to ``benchmarks/results/<benchmark>.jsonl`` (or ``path``) and return it."""
    row = {"benchmark": benchmark, "case": case, "seed": seed, "figures": figures, "precision": precision,
           **setting(), "recorded": "measured", **setting_overrides}
    target = Path(path) if path else results_file(benchmark)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, ensure_ascii=False, allow_nan=True) + "\n"
    with open(target, "a", encoding="utf-8") as handle:  # one write per row: side-by-side runs never interleave
        handle.write(line)
    return row


def read(benchmark: str | None = None, path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every row of one benchmark (or of every benchmark), in the order they were recorded."""
    files = [Path(path)] if path else [results_file(benchmark)] if benchmark else sorted(RESULTS.glob("*.jsonl"))
    rows = []
    for file in files:
        if not file.is_file():
            continue
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"{file}:{number}: not a JSON line ({exc.msg})") from None
    return rows


def isa_summary(isa: list[str]) -> str:
    """The instruction sets that matter here, in words: ``AVX-512 BF16 and VNNI``, ``AMX``, ``AVX2 only``."""
    have = set(isa)
    if {"amx_tile", "amx_bf16"} & have:
        return "AMX"
    if "avx512_bf16" in have:
        return "AVX-512 BF16 and VNNI" if "avx512_vnni" in have else "AVX-512 BF16"
    if "avx512f" in have:
        return "AVX-512 and VNNI" if "avx512_vnni" in have else "AVX-512 (no BF16)"
    if "avx2" in have:
        return "AVX2 only"
    return ""


def gpu_name(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``NVIDIA H100``: the model, not the memory variant."""
    words = name.split()
    keep = [w for w in words if not any(w.upper().endswith(s) for s in ("GB", "HBM3", "HBM3E", "PCIE", "SXM", "SXM5", "NVL"))]
    return " ".join(keep) or name


def hardware(machine: dict[str, Any] | None) -> str:
    """A machine as a page names it: ``2-core AMD EPYC with AVX-512 BF16 and VNNI``, ``one NVIDIA H100``."""
    if not machine:
        return "not recorded"
    if machine.get("gpu"):
        cores = f" ({machine['cores']} CPU cores)" if machine.get("cores") else ""
        return f"one {gpu_name(machine['gpu'])}{cores}"
    cpu = machine.get("cpu") or "CPU"
    cores = f"{machine['cores']}-core " if machine.get("cores") else ""
    isa = isa_summary(machine.get("isa") or [])
    return f"{cores}{cpu}" + (f" with {isa}" if isa and isa != "AVX2 only" else " (AVX2 only)" if isa else "")


def timed(seconds_since: float) -> float:
    """Seconds since ``seconds_since`` (a ``time.perf_counter()`` reading), to a tenth."""
    return round(time.perf_counter() - seconds_since, 1)


def same_hardware(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two machines compute alike: the same CPU model, instruction sets and GPU (the cores aside)."""
    fields = ("cpu", "isa", "gpu")
    return bool(a and b) and all(a.get(f) == b.get(f) for f in fields)


def measured_here(benchmark: str, path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The rows of ``benchmark`` measured on hardware like this machine's: what a ``--resume`` skips."""
    here = machine()
    return [row for row in read(benchmark, path) if same_hardware(row.get("machine"), here)]
