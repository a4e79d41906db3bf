"""Connector lock: holds the plug of a socket outlet while power may flow.

``lock()`` / ``unlock()`` return ``True`` when the feedback confirms the new position and
``False`` when the lock did not move (after the backend's retries). Fixed-cable stations have no
lock: use :class:`NoLock`.
"""

from __future__ import annotations

from typing import Protocol


class ConnectorLock(Protocol):
    locked: bool

    async def lock(self) -> bool: ...
    async def unlock(self) -> bool: ...


class SimLock:
    """A lock in memory. ``jammed`` makes it refuse to move, for fault tests."""

    def __init__(self) -> None:
        self.locked = False
        self.jammed = False
        self.operations = 0

    async def lock(self) -> bool:
        self.operations += 1
        if self.jammed:
            return self.locked
        self.locked = True
        return True

    async def unlock(self) -> bool:
        self.operations += 1
        if self.jammed:
            return not self.locked
        self.locked = False
        return True


class NoLock:
    """A fixed cable: nothing to lock. ``unlock`` reports success (there is nothing held)."""

    locked = False

    async def lock(self) -> bool:
        return True

    async def unlock(self) -> bool:
        return True
