"""The transaction message outbox, version independent: messages are stored (SQLite) before they
are sent, delivered one at a time in the order they were queued, across outages and power loss,
and retried after a failure.

What differs between OCPP versions is a small ``OutboxPolicy`` the adapter passes in: how a stored
message is completed just before it goes out (1.6: the transactionId the CSMS gave in its
StartTransaction answer is filled into StopTransaction and MeterValues), whether an answer is
usable, what it means, and the attempts and retry interval (1.6 TransactionMessageAttempts /
TransactionMessageRetryInterval, 2.0.1 MessageAttemptsTransactionEvent /
MessageAttemptIntervalTransactionEvent).

Delivery rules:

- A CallError, or an answer the policy finds unusable (a StartTransaction.conf whose
  transactionId is not a 32-bit integer, a non-object idTagInfo; or a schema-invalid answer the
  link reports as a CallErrorReceived), counts as one attempt; the message is sent again after
  ``retry_interval() x attempts so far`` (at most ``MAX_RETRY_WAIT_S``). After ``max_attempts()``
  such failures the policy's ``gave_up()`` is told and the message is dropped, as OCPP 1.6
  section 4.10 allows (only after repeated CallErrors).
- A timeout is an outage, not an attempt (a policy with ``timeouts_are_attempts``, 2.0.1's E13,
  counts it as one): the message stays at the head of the queue and is sent
  again (after ``retry_interval()``, at least ``MIN_RETRY_WAIT_S``), however long it takes.
- Each message gets its OCPP-J unique id once, stored with its row before it is first sent; every
  resend (a timeout, a restart after a power cut) carries the same id, so a CSMS can recognise a
  repeat of a message it already processed.
- The answer's effect on the store (1.6: the CSMS's transactionId) and the removal of the message
  are one SQLite transaction: a power cut leaves either both or neither.
- Nothing the CSMS answers and no failure of a policy method ends the delivery loop: each is
  logged and handled as a failed attempt.

No polling: delivery runs when something is queued or the station is online again (``kick()``),
and a retry is a one-shot timer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from station.link import CallErrorReceived, NotConnected
from station.scheduler import Scheduler, Timer
from station.store import Store
from station.tasks import Event

MIN_RETRY_WAIT_S = 1.0  # a timed-out message is sent again after at least this long
MAX_RETRY_WAIT_S = 3_600.0  # no retry waits longer than this, whatever the keys say


class BadAnswer(Exception):
    """The CSMS answered, but with something the policy cannot use: handled like a CallError."""


class OutboxPolicy(Protocol):
    def prepare(self, action: str, payload: dict, tx_local: int | None) -> dict | None:
        """The payload to send now, or None: it can never be sent (logged and dropped)."""
        ...

    def check(self, action: str, response: Any) -> str | None:
        """What makes the answer unusable, or None: it is fine."""
        ...

    def record(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        """Store what the answer means (in the same SQLite transaction as the message's removal)."""
        ...

    def delivered(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        """The CSMS answered the message (after it is off the queue): act on the answer."""
        ...

    def gave_up(self, action: str, payload: dict, tx_local: int | None) -> None:
        """The message is dropped after max_attempts() failures (in the removal's transaction)."""
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
        send: Callable[..., Awaitable[dict]],  # send(action, payload, unique_id=...) -> the answer
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
        self._progress = Event()

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
            try:
                payload = self.policy.prepare(action, stored, tx_local)
            except Exception as e:
                self.log.exception("%s: cannot prepare the queued message", action)
                if self._failed(seq, action, stored, tx_local, attempts, f"cannot prepare it: {e!r}"):
                    continue
                return
            if payload is None:
                self.log.error("%s for a transaction the CSMS never registered: dropped", action)
                self.store.outbox_remove(seq)
                continue
            unique_id = self.store.outbox_unique_id(seq, lambda: str(uuid.uuid4()))
            try:
                resp = await self._send(action, payload, unique_id=unique_id)
                problem = self.policy.check(action, resp)
                if problem:
                    raise BadAnswer(problem)
            except NotConnected:
                return  # kicked again once online
            except TimeoutError:
                if getattr(self.policy, "timeouts_are_attempts", False):
                    # 2.0.1 E13: a message the CSMS did not answer was not accepted either
                    if self._failed(seq, action, payload, tx_local, attempts, "not answered in time"):
                        continue
                    return
                # an outage, not an attempt (OCPP 1.6 counts CallErrors): keep it, same unique id
                wait = min(MAX_RETRY_WAIT_S, max(MIN_RETRY_WAIT_S, self.policy.retry_interval()))
                self.log.warning("%s not answered (id %s); sending it again in %g s", action, unique_id, wait)
                self._retry = self.scheduler.call_later(wait, self._retry_due)
                return
            except asyncio.CancelledError:
                raise
            except (CallErrorReceived, BadAnswer) as e:
                if self._failed(seq, action, payload, tx_local, attempts, e):
                    continue
                return
            except Exception as e:  # a bug or a bad frame: never the end of delivery
                self.log.exception("%s: sending failed", action)
                if self._failed(seq, action, payload, tx_local, attempts, repr(e)):
                    continue
                return
            try:
                with self.store.atomic():
                    self.store.outbox_remove(seq)
                    self.policy.record(action, payload, tx_local, resp)
            except Exception as e:
                self.log.exception("%s: cannot record the answer", action)
                if self._failed(seq, action, payload, tx_local, attempts, f"cannot record the answer: {e!r}"):
                    continue
                return
            self._progress.set()
            try:
                self.policy.delivered(action, payload, tx_local, resp)
            except Exception:
                self.log.exception("%s: acting on the answer failed", action)

    def _failed(self, seq: int, action: str, payload: dict, tx_local: int | None, attempts: int, why: object) -> bool:
        """One failed attempt (a CallError or an unusable answer). True: the message was dropped
        after the last attempt, go on with the next; False: a retry is armed."""
        try:
            max_attempts = max(1, int(self.policy.max_attempts()))
        except Exception:
            max_attempts = 1
        if attempts + 1 >= max_attempts:
            self.log.error("%s not accepted after %d attempts (%s): dropped", action, attempts + 1, why)
            with self.store.atomic():
                self.store.outbox_remove(seq)
                try:
                    self.policy.gave_up(action, payload, tx_local)
                except Exception:
                    self.log.exception("%s: giving up failed", action)
            self._progress.set()
            return True
        self.store.outbox_attempt(seq)
        try:
            interval = float(self.policy.retry_interval())
        except Exception:
            interval = MIN_RETRY_WAIT_S
        wait = min(MAX_RETRY_WAIT_S, max(0.0, interval) * (attempts + 1))
        self.log.warning("%s failed (%s); attempt %d in %g s", action, why, attempts + 2, wait)
        self._retry = self.scheduler.call_later(wait, self._retry_due)
        return False
