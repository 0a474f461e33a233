"""Load generator for the prediction server: latency and throughput at several concurrency levels.

    python benchmarks/bench_serve.py                        # random-weight resnet18 at 224 px
    python benchmarks/bench_serve.py -c shipped             # the shipped model (resnet18, 160 px)
    python benchmarks/bench_serve.py --precision 32         # the server in fp32
    python benchmarks/bench_serve.py -c checkpoints/resnet18/<run>/last.ckpt --batch-size 8 --max-wait-ms 5
    python benchmarks/bench_serve.py --url http://127.0.0.1:8000   # a server already running (loopback only)

It needs no data: every request sends ``--image`` (``sample_set/000000.jpg`` by default). Unless
``--url`` is given it starts ``perspective serve`` on a free loopback port, waits for /health, sends
a few warm-up requests, then for each concurrency level sends ``--requests`` single-image requests
from that many concurrent clients and prints p50/p95 latency and images/s as a table, and for each
level against level 1: the throughput ratio and the p95 against level 1's p50. Every loop is bounded
in count and in time (``--max-seconds`` per level). The client runs on the same machine as the
server, so its own CPU use is part of what is measured.

Each level is appended as it finishes to ``benchmarks/results/serve.jsonl`` (``--results``
redirects it). Case keys: ``model`` (the server's model name), ``backbone``, ``image_size``,
``image``, ``batch_size`` and ``max_wait_ms`` (the server's flags; null for ``--url``),
``requests``, ``concurrency``; ``precision`` is what the server computes in. Figures: ``p50_ms``,
``p95_ms``, ``images_per_s``, ``requests_ok``, ``failed``, and beside level 1 of the same run
``throughput_ratio_to_1`` and ``p95_ratio_to_p50_at_1``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import (  # noqa: E402
    ArgumentParser,
    non_negative_float,
    positive_float,
    positive_int,
)
from perspective.config import PRECISIONS  # noqa: E402

BENCHMARK = "serve"

LOOPBACK = ("127.0.0.1", "::1", "localhost")  # serving.app.LOOPBACK_HOSTS, without importing torch for it


def concurrency_levels(text: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``; each level from 1 to 256."""
    try:
        levels = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1 or max(levels) > 256:
        raise argparse.ArgumentTypeError(f"expected comma-separated levels from 1 to 256, got {text!r}")
    return levels


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_serve.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--checkpoint", default="random",
                   help="'random' (a random-weight resnet18 at --image-size, made for the run), 'shipped', "
                        "or a checkpoint path (default random)")
    p.add_argument("--image-size", type=positive_int, default=224, help="input size of the random model (default 224)")
    p.add_argument("--url", default=None, help="benchmark this running server instead of starting one (loopback)")
    p.add_argument("--image", default=str(ROOT / "sample_set" / "000000.jpg"), help="the image every request sends")
    p.add_argument("--requests", type=positive_int, default=200, help="requests per concurrency level (default 200)")
    p.add_argument("--concurrency", type=concurrency_levels, default="1,8,32",
                   help="comma-separated levels, 1 to 256 (default 1,8,32)")
    p.add_argument("--warmup", type=positive_int, default=10, help="requests before measuring (default 10)")
    p.add_argument("--max-seconds", type=positive_float, default=300, help="time bound per level (default 300)")
    p.add_argument("-s", "--batch-size", "--max-batch", type=positive_int, default=16,
                   help="server's --batch-size (default 16)")
    p.add_argument("--max-wait-ms", type=non_negative_float, default=10, help="server's --max-wait-ms (default 10)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="server's --precision (default auto)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def server_flags(args) -> list[str]:
    """The flags this benchmark gives ``perspective serve`` besides the model and the address."""
    return ["--batch-size", str(args.batch_size), "--max-wait-ms", f"{args.max_wait_ms:g}", "--precision", args.precision]


def start_server(checkpoint: Path, workdir: Path, flags: list[str]) -> tuple[subprocess.Popen, str]:
    """``perspective serve`` on a free loopback port; returns the process and its URL once /health answers."""
    log_file = workdir / "api.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "perspective", "serve", "-c", str(checkpoint), "--host", "127.0.0.1", "--port", "0",
         "--log-file", str(log_file), *flags],
        stdout=subprocess.DEVNULL, stderr=(workdir / "stderr.txt").open("w"), cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"perspective serve exited: {(workdir / 'stderr.txt').read_text()[-2000:]}")
        found = re.search(r"serving on (http://\S+) ", log_file.read_text()) if log_file.exists() else None
        if found:
            try:
                if httpx.get(f"{found.group(1)}/health", timeout=2).status_code == 200:
                    return proc, found.group(1)
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("perspective serve did not become ready in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


async def run_level(url: str, image: bytes, concurrency: int, requests: int, max_seconds: float) -> dict:
    """``requests`` POSTs from ``concurrency`` clients; latencies of the successful ones."""
    latencies: list[float] = []
    failures = 0
    sent = 0
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal sent, failures
        while sent < requests and time.monotonic() < deadline:
            sent += 1
            start = time.perf_counter()
            try:
                response = await client.post(f"{url}/predict", files={"file": ("car.jpg", image, "image/jpeg")})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"concurrency": concurrency, "ok": len(latencies), "failed": failures, "p50": pct(0.50),
            "p95": pct(0.95), "rate": len(latencies) / wall}


def model_info(url: str) -> dict:
    return httpx.get(f"{url}/model", timeout=10).json()


def describe(info: dict) -> str:
    return f"{info['name']} ({info['backbone']}, {info['image_size']} px, {info['precision']} on {info['device']})"


def image_name(path: str) -> str:
    """The request image as a row names it: relative to the repository when it lies inside it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else resolved.name


def level_figures(level: dict, first: dict | None) -> dict:
    """A level's figures, and beside level 1 of the same run its throughput and tail ratios."""
    figures = {"p50_ms": level["p50"], "p95_ms": level["p95"], "images_per_s": level["rate"],
               "requests_ok": level["ok"], "failed": level["failed"]}
    if first is not None and level is not first:
        figures["throughput_ratio_to_1"] = level["rate"] / first["rate"]
        figures["p95_ratio_to_p50_at_1"] = level["p95"] / first["p50"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def benchmark(url: str, args, levels: list[int], case: dict, precision: str) -> list[dict]:
    """Every level in turn, each appended to the results as it finishes."""
    image = Path(args.image).read_bytes()
    asyncio.run(run_level(url, image, 1, args.warmup, args.max_seconds))
    rows, first = [], None
    for concurrency in levels:
        level = asyncio.run(run_level(url, image, concurrency, args.requests, args.max_seconds))
        first = level if concurrency == 1 and first is None else first
        store.record(BENCHMARK, {**case, "concurrency": concurrency}, level_figures(level, first),
                     precision=precision, path=args.results)
        rows.append(level)
    return rows


def print_table(model: str, rows: list[dict]) -> None:
    print(f"model: {model}")
    print(f"{'concurrency':>11} {'requests':>8} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['ok']:>8} {r['failed']:>6} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['rate']:>9.1f}")
    first = next((r for r in rows if r["concurrency"] == 1), None)
    for r in rows:
        if first is not None and r is not first:
            print(f"throughput at {r['concurrency']} / at 1: {r['rate'] / first['rate']:.2f}x; "
                  f"p95 at {r['concurrency']} / p50 at 1: {r['p95'] / first['p50']:.2f}x")


def measure(url: str, args, levels: list[int], flags: dict) -> None:
    """Benchmark the server at ``url`` and print the table; ``flags`` are its batching flags (None: unknown)."""
    info = model_info(url)
    case = {"model": info["name"], "backbone": info["backbone"], "image_size": info["image_size"],
            "image": image_name(args.image), **flags, "requests": args.requests}
    print_table(describe(info), benchmark(url, args, levels, case, info["precision"]))


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    levels = args.concurrency
    if not Path(args.image).is_file():
        parser.error(f"--image {args.image}: no such file")
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            parser.error("--url must be a loopback address (127.0.0.1, ::1, localhost)")
        measure(args.url.rstrip("/"), args, levels, {"batch_size": None, "max_wait_ms": None})
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        workdir = Path(tmp)
        if args.checkpoint == "random":  # random weights: the compute of a trained resnet18
            from bench_infer import make_checkpoint

            checkpoint = make_checkpoint(workdir / f"resnet18_random_{args.image_size}px.ckpt", "resnet18",
                                         args.image_size)
        elif args.checkpoint == "shipped":
            from perspective.models import shipped_checkpoint

            checkpoint = shipped_checkpoint()
        else:
            checkpoint = Path(args.checkpoint)
        proc, url = start_server(checkpoint, workdir, server_flags(args))
        print(f"server: perspective serve {' '.join(server_flags(args))}", flush=True)
        try:
            measure(url, args, levels, {"batch_size": args.batch_size, "max_wait_ms": float(args.max_wait_ms)})
        finally:
            stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
