"""A set of background tasks owned by one object: spawned, logged when they fail, cancelled together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable


class Tasks:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.log.error("%s task failed: %s", self.what, exc, exc_info=exc)

    def cancel_all(self) -> None:
        for t in list(self._tasks):
            t.cancel()
