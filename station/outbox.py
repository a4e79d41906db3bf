"""The transaction message outbox, version independent: messages are stored (SQLite) before they
are sent, delivered one at a time in the order they were queued, across outages and power loss,
and retried after a failure up to a number of attempts.

What differs between OCPP versions is a small ``OutboxPolicy`` the adapter passes in: how a stored
message is completed just before it goes out (1.6: the transactionId the CSMS gave in its
StartTransaction answer is filled into StopTransaction and MeterValues), what an answer means, and
the attempts and retry interval (1.6 TransactionMessageAttempts / TransactionMessageRetryInterval,
2.0.1 MessageAttemptsTransactionEvent / MessageAttemptIntervalTransactionEvent).

No polling: delivery runs when something is queued or the station is online again (``kick()``),
and a retry is a one-shot timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from station.link import CallErrorReceived, NotConnected
from station.scheduler import Scheduler, Timer
from station.store import Store


class OutboxPolicy(Protocol):
    def prepare(self, action: str, payload: dict, tx_local: int | None) -> dict | None:
        """The payload to send now, or None: it can never be sent (logged and dropped)."""
        ...

    def delivered(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        """The CSMS answered the message."""
        ...

    def max_attempts(self) -> int: ...

    def retry_interval(self) -> float:
        """Seconds before the second attempt; the n-th retry waits n times as long."""
        ...


class Outbox:
    def __init__(
        self,
        *,
        store: Store,
        scheduler: Scheduler,
        log: logging.Logger,
        send: Callable[[str, dict], Awaitable[dict]],
        online: Callable[[], bool],
        policy: OutboxPolicy,
        spawn: Callable[[Awaitable[Any]], asyncio.Task],
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.log = log
        self._send = send
        self._online = online
        self.policy = policy
        self._spawn = spawn
        self._task: asyncio.Task | None = None
        self._retry: Timer | None = None
        self._progress = asyncio.Event()

    def __len__(self) -> int:
        return self.store.outbox_len()

    def add(self, action: str, payload: dict, tx_local: int | None = None) -> None:
        """Queue a message (stored before this returns) and deliver it when its turn comes."""
        self.store.outbox_add(action, payload, tx_local)
        self.kick()

    def kick(self) -> None:
        """Deliver what is queued, if online and not already delivering or waiting to retry."""
        if self._retry is not None or (self._task is not None and not self._task.done()):
            return
        if not self._online() or self.store.outbox_len() == 0:
            return
        self._task = self._spawn(self._deliver())

    def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def flush(self, timeout: float) -> None:
        """Give queued messages up to ``timeout`` seconds to go out (before a reset)."""
        deadline = self.scheduler.monotonic() + timeout
        self.kick()
        while self._online() and self.store.outbox_len() and (left := deadline - self.scheduler.monotonic()) > 0:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), left)
            except TimeoutError:
                return

    def _retry_due(self) -> None:
        self._retry = None
        self.kick()

    async def _deliver(self) -> None:
        try:
            await self._deliver_all()
        finally:
            self._progress.set()

    async def _deliver_all(self) -> None:
        while self._online():
            item = self.store.outbox_first()
            if item is None:
                return
            seq, action, stored, tx_local, attempts = item
            payload = self.policy.prepare(action, stored, tx_local)
            if payload is None:
                self.log.error("%s for a transaction the CSMS never registered: dropped", action)
                self.store.outbox_remove(seq)
                continue
            try:
                resp = await self._send(action, payload)
            except NotConnected:
                return  # kicked again once online
            except (TimeoutError, CallErrorReceived) as e:
                self.store.outbox_attempt(seq)
                max_attempts = max(1, self.policy.max_attempts())
                if attempts + 1 >= max_attempts:
                    self.log.error("%s not accepted after %d attempts (%s): dropped", action, attempts + 1, e)
                    self.store.outbox_remove(seq)
                    self._progress.set()
                    continue
                wait = self.policy.retry_interval() * (attempts + 1)
                self.log.warning("%s failed (%s); attempt %d again in %g s", action, e, attempts + 2, wait)
                self._retry = self.scheduler.call_later(wait, self._retry_due)
                return
            self.store.outbox_remove(seq)
            self._progress.set()
            self.policy.delivered(action, payload, tx_local, resp)
