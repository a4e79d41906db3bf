"""A set of background tasks owned by one object: spawned, logged when they fail, cancelled
together; and :class:`Event`, an ``asyncio.Event`` that costs less while nobody waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable


class Event(asyncio.Event):
    """``asyncio.Event`` with its waiters in a list instead of a deque: an idle deque takes about
    600 bytes, an empty list 56, and a station has several events that rarely have a waiter (a
    fleet of 10,000 stations holds 60,000 of them)."""

    def __init__(self) -> None:  # asyncio.Event's state, without the deque
        self._waiters = []  # type: ignore[assignment]
        self._value = False


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
        """Cancel every task but the calling one (a task of ours may be what asks, e.g. a close
        awaited from an after() callback: it must go on)."""
        me = asyncio.current_task() if _loop_running() else None
        for t in list(self._tasks):
            if t is not me:
                t.cancel()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
