"""Load generator for the prediction server: latency and throughput at several concurrency levels.

    python benchmarks/bench_serve.py                        # random-weight resnet18 at 224 px (the goal's setting)
    python benchmarks/bench_serve.py -c shipped             # the shipped model (resnet18, 160 px)
    python benchmarks/bench_serve.py -c best.ckpt --max-batch 8 --max-wait-ms 5
    python benchmarks/bench_serve.py --url http://127.0.0.1:8000   # a server already running (loopback only)

Unless ``--url`` is given it starts ``serve.py`` on a free loopback port, waits for /health, sends a
few warm-up requests, then for each concurrency level sends ``--requests`` single-image requests from
that many concurrent clients and prints p50/p95 latency and images/s as a table, then the two goals
of issue 5 (throughput at 8 >= 2x at 1; p95 at 8 <= 3x the p50 at 1). Every loop is bounded in count
and in time (``--max-seconds`` per level). The client runs on the same machine as the server, so its
own CPU use is part of what is measured.
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

from perspective.cli import (  # noqa: E402
    ArgumentParser,
    non_negative_float,
    positive_float,
    positive_int,
)
from perspective.config import PRECISIONS  # noqa: E402

LOOPBACK = ("127.0.0.1", "::1", "localhost")  # serve.py's LOOPBACK_HOSTS, without importing torch for it


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
    p.add_argument("--max-batch", type=positive_int, default=16, help="server's --max-batch (default 16)")
    p.add_argument("--max-wait-ms", type=non_negative_float, default=10, help="server's --max-wait-ms (default 10)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="server's --precision (default auto)")
    return p


def start_server(checkpoint: Path, workdir: Path, max_batch: int, max_wait_ms: float,
                 precision: str) -> tuple[subprocess.Popen, str]:
    """serve.py on a free loopback port; returns the process and its URL once /health answers."""
    log_file = workdir / "api.log"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "serve.py"), "-c", str(checkpoint), "--host", "127.0.0.1", "--port", "0",
         "--log-file", str(log_file), "--batch-size", str(max_batch), "--max-wait-ms", str(max_wait_ms),
         "--precision", precision],
        stdout=subprocess.DEVNULL, stderr=(workdir / "stderr.txt").open("w"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve.py exited: {(workdir / 'stderr.txt').read_text()[-2000:]}")
        found = re.search(r"serving on (http://\S+) ", log_file.read_text()) if log_file.exists() else None
        if found:
            try:
                if httpx.get(f"{found.group(1)}/health", timeout=2).status_code == 200:
                    return proc, found.group(1)
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("serve.py did not become ready in 120 s")


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


def describe(url: str) -> str:
    info = httpx.get(f"{url}/model", timeout=10).json()
    return f"{info['name']} ({info['backbone']}, {info['image_size']} px, {info['precision']} on {info['device']})"


def benchmark(url: str, args, levels: list[int]) -> list[dict]:
    image = Path(args.image).read_bytes()
    asyncio.run(run_level(url, image, 1, args.warmup, args.max_seconds))
    return [asyncio.run(run_level(url, image, c, args.requests, args.max_seconds)) for c in levels]


def print_table(model: str, rows: list[dict]) -> None:
    print(f"model: {model}")
    print(f"{'concurrency':>11} {'requests':>8} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['ok']:>8} {r['failed']:>6} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['rate']:>9.1f}")
    by = {r["concurrency"]: r for r in rows}
    if 1 in by and 8 in by:
        speedup = by[8]["rate"] / by[1]["rate"]
        tail = by[8]["p95"] / by[1]["p50"]
        print(f"throughput at 8 / at 1: {speedup:.2f}x (goal >= 2); p95 at 8 / p50 at 1: {tail:.2f}x (goal <= 3)")


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    levels = args.concurrency
    if not Path(args.image).is_file():
        parser.error(f"--image {args.image}: no such file")
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            parser.error("--url must be a loopback address (127.0.0.1, ::1, localhost)")
        url = args.url.rstrip("/")
        print_table(describe(url), benchmark(url, args, levels))
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
        proc, url = start_server(checkpoint, workdir, args.max_batch, args.max_wait_ms, args.precision)
        try:
            model = describe(url)
            rows = benchmark(url, args, levels)
        finally:
            stop_server(proc)
        print(f"server: serve.py --batch-size {args.max_batch} --max-wait-ms {args.max_wait_ms:g} "
              f"--precision {args.precision}")
        print_table(model, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
