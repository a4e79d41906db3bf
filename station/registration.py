"""Registration with the CSMS, version independent: BootNotification until Accepted (again after
the interval while Pending or Rejected, after ``retry_s`` when the call fails), then Heartbeat.

BootNotification and Heartbeat answer alike in OCPP 1.6 and 2.0.1 (status, interval,
currentTime); what the request carries is the adapter's ``boot_payload()``. Every wait is a
one-shot timer on the Scheduler: the heartbeat timer is armed for one interval after the last
message exchanged with the CSMS (any message counts, 1.6 section 4.6) and, when it fires early
because something was exchanged meanwhile, re-armed for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from station.link import CallErrorReceived, NotConnected
from station.scheduler import Scheduler, Timer

Call = Callable[[str, dict], Awaitable[dict]]
Spawn = Callable[[Awaitable[Any]], Any]


class Registration:
    def __init__(
        self,
        *,
        scheduler: Scheduler,
        log: logging.Logger,
        call: Call,
        spawn: Spawn,
        connected: Callable[[], bool],
        boot_payload: Callable[[], dict],
        on_answer: Callable[[str, int], None],
        heartbeat_interval: Callable[[], float],
        retry_s: float = 30.0,
    ) -> None:
        self.scheduler = scheduler
        self.log = log
        self._call = call
        self._spawn = spawn
        self._connected = connected
        self.boot_payload = boot_payload
        # (status, interval): the adapter's reaction to a BootNotification answer; it keeps an
        # Accepted answer's interval where heartbeat_interval() finds it
        self.on_answer = on_answer
        self.heartbeat_interval = heartbeat_interval
        self.retry_s = retry_s
        self.status: str | None = None  # Accepted | Pending | Rejected, None before the first answer
        self._boot_timer: Timer | None = None
        self._heartbeat_timer: Timer | None = None
        self._last_message = scheduler.monotonic()

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"

    # -- link events -------------------------------------------------------------------------
    def activity(self) -> None:
        """A message went either way: the heartbeat is due one interval from now."""
        self._last_message = self.scheduler.monotonic()

    def connected(self) -> None:
        """The link is up: boot if not yet Accepted, else carry on with heartbeats."""
        if self.accepted:
            self._arm_heartbeat()
        else:
            self.boot_now()

    def disconnected(self) -> None:
        self._cancel_boot()
        self._cancel_heartbeat()

    def stop(self) -> None:
        self.disconnected()

    # -- boot --------------------------------------------------------------------------------
    def boot_now(self) -> None:
        self._cancel_boot()
        self._spawn(self.boot())

    async def boot(self, again: bool = False) -> None:
        """One BootNotification; arms the next try unless Accepted. ``again``: registered anew
        even if Accepted before (TriggerMessage BootNotification)."""
        if again:
            self.status = None
        self._cancel_boot()
        if not self._connected():
            return
        try:
            resp = await self._call("BootNotification", self.boot_payload())
        except NotConnected:
            return
        except (TimeoutError, CallErrorReceived) as e:
            self.log.warning("BootNotification failed: %s; retrying in %d s", e, self.retry_s)
            self._arm_boot(self.retry_s)
            return
        status = str(resp.get("status"))
        interval = int(resp.get("interval", 0) or 0)
        self.status = status
        self.on_answer(status, interval)
        if status == "Accepted":
            self._arm_heartbeat()
            return
        # Pending or Rejected: wait the interval (the CSMS may configure us meanwhile), try again
        wait = interval if interval > 0 else self.retry_s
        self.log.info("registration %s; BootNotification again in %d s", status, wait)
        self._arm_boot(wait)

    def _arm_boot(self, delay: float) -> None:
        self._cancel_boot()
        self._boot_timer = self.scheduler.call_later(delay, self._boot_due)

    def _boot_due(self) -> None:
        self._boot_timer = None
        if self._connected():
            self._spawn(self.boot())

    def _cancel_boot(self) -> None:
        if self._boot_timer is not None:
            self._boot_timer.cancel()
            self._boot_timer = None

    # -- heartbeat ---------------------------------------------------------------------------
    def heartbeat_interval_changed(self) -> None:
        if self.accepted and self._connected():
            self._arm_heartbeat()

    async def heartbeat(self) -> None:
        try:
            await self._call("Heartbeat", {})
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("Heartbeat failed: %s", e)
            self.activity()  # try again one interval later, not at once

    def _arm_heartbeat(self) -> None:
        self._cancel_heartbeat()
        interval = float(self.heartbeat_interval())
        if interval <= 0:
            return
        self._heartbeat_timer = self.scheduler.call_at(self._last_message + interval, self._heartbeat_due)

    def _heartbeat_due(self) -> None:
        self._heartbeat_timer = None
        interval = float(self.heartbeat_interval())
        if not (self.accepted and self._connected()) or interval <= 0:
            return  # armed again when the link is up and registered, or the interval is set
        if self.scheduler.monotonic() - self._last_message < interval:
            self._arm_heartbeat()  # something was exchanged meanwhile
            return
        self._spawn(self._beat())

    async def _beat(self) -> None:
        try:
            await self.heartbeat()
        finally:
            if self.accepted and self._connected():
                self._arm_heartbeat()

    def _cancel_heartbeat(self) -> None:
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
            self._heartbeat_timer = None
