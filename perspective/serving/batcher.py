"""The micro-batcher: images of concurrent requests gathered into one forward pass, run in its own
thread so the event loop keeps reading requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from fastapi import HTTPException

log = logging.getLogger("perspective.serve")  # one name for the server's log lines, whichever module writes them

@dataclass
class _Job:
    image: torch.Tensor
    future: asyncio.Future


class MicroBatcher:
    """Gathers images from concurrent requests into one forward pass, run in its own thread.

    A batch starts with the oldest waiting image and takes every image already queued, up to
    ``max_batch``. It waits up to ``max_wait_s`` for more only while some request is still being
    decoded (``expect``), since only then can more images come soon; a lone request runs at once.

    Args:
        run_batch: list of image tensors -> one output row per image (called in the model thread).
        max_batch, max_wait_s, max_queue: see ``ServeConfig``.
    """

    def __init__(self, run_batch: Callable[[list[torch.Tensor]], torch.Tensor], max_batch: int,
                 max_wait_s: float, max_queue: int):
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.batches = 0  # forward passes run and images predicted, reported by /health
        self.images = 0
        self._jobs: deque[_Job] = deque()
        self._incoming = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._jobs.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    @contextmanager
    def expect(self, n: int) -> Iterator[None]:
        """Announce ``n`` images being decoded (so a batch may wait for them); 503 when full."""
        if len(self._jobs) + self._incoming + n > self.max_queue:
            raise HTTPException(503, detail="server busy: too many images waiting, retry later",
                                headers={"Retry-After": "1"})
        self._incoming += n
        try:
            yield
        finally:
            self._incoming -= n
            self._wake()

    async def predict(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One output row per image, from whichever batches they land in."""
        loop = asyncio.get_running_loop()
        jobs = [_Job(image, loop.create_future()) for image in images]
        self._jobs.extend(jobs)
        self._wake()
        return list(await asyncio.gather(*(job.future for job in jobs)))

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _gather(self) -> list[_Job]:
        """Wait for the next batch: at least one job, more while they are worth waiting for."""
        loop = asyncio.get_running_loop()
        while not self._jobs:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = loop.time() + self.max_wait_s
        while len(self._jobs) < self.max_batch and self._incoming > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        count = min(len(self._jobs), self.max_batch)
        return [self._jobs.popleft() for _ in range(count)]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [job for job in await self._gather() if not job.future.done()]
            if not jobs:
                continue
            try:
                outputs = await loop.run_in_executor(self._executor, self.run_batch, [j.image for j in jobs])
            except Exception as exc:  # noqa: BLE001 - one failed pass must not stop the server
                log.exception("forward pass of %d image(s) failed", len(jobs))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.batches += 1
            self.images += len(jobs)
            for job, output in zip(jobs, outputs):
                if not job.future.done():
                    job.future.set_result(output)
