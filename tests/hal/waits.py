"""Waiting in device tests: poll a condition with a bound, and say what did not happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_for(pred: Callable[[], object], timeout: float = 3.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
