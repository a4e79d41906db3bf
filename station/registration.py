"""Registration with the CSMS, version independent: BootNotification until Accepted (again after
the interval while Pending or Rejected, after ``retry_s`` when the call fails), then Heartbeat.

BootNotification and Heartbeat answer alike in OCPP 1.6 and 2.0.1 (status, interval,
currentTime); what the request carries is the adapter's ``boot_payload()``.

A BootNotification answer the station cannot use (status not Accepted/Pending/Rejected, interval
not a whole number, or not an object at all; or a schema-invalid answer the link reports as a
CallErrorReceived) is a failed boot: logged, tried again after ``retry_s``. OCPP 1.6 section 4.2
makes a Pending/Rejected interval the minimum wait before the next BootNotification; it is
bounded to [``BOOT_WAIT_MIN_S``, ``BOOT_WAIT_MAX_S``] (a CSMS asking for ten years would leave the
station connected and unregistered until someone drives out), 0 meaning "the station chooses"
(``retry_s``). Nothing an answer contains ends the registration: an unexpected error is logged
and the boot retried. Every wait is a one-shot timer on the Scheduler: the heartbeat timer is armed for one interval after the last
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

BOOT_WAIT_MIN_S = 1.0
BOOT_WAIT_MAX_S = 3_600.0  # the longest wait between BootNotifications while Pending or Rejected
REGISTRATION_STATUS = ("Accepted", "Pending", "Rejected")


def boot_answer_problem(resp: Any) -> str | None:
    """What makes a BootNotification answer unusable, or None."""
    if not isinstance(resp, dict):
        return "the answer is not an object"
    if resp.get("status") not in REGISTRATION_STATUS:
        return f"status {str(resp.get('status'))[:20]!r} is not a RegistrationStatus"
    interval = resp.get("interval")
    if not isinstance(interval, int) or isinstance(interval, bool):
        return f"interval {str(interval)[:20]!r} is not a whole number"
    return None
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
            problem = boot_answer_problem(resp)
        except NotConnected:
            return
        except (TimeoutError, CallErrorReceived) as e:
            self.log.warning("BootNotification failed: %s; retrying in %d s", e, self.retry_s)
            self._arm_boot(self.retry_s)
            return
        except Exception:  # a bug or a bad frame: never the end of registration
            self.log.exception("BootNotification failed; retrying in %d s", self.retry_s)
            self._arm_boot(self.retry_s)
            return
        if problem:
            self.log.warning("BootNotification answer unusable (%s); retrying in %d s", problem, self.retry_s)
            self._arm_boot(self.retry_s)
            return
        status, interval = str(resp["status"]), int(resp["interval"])
        self.status = status
        try:
            self.on_answer(status, interval)
        except Exception:
            self.log.exception("acting on the BootNotification answer failed")
        if status == "Accepted":
            self._arm_heartbeat()
            return
        # Pending or Rejected: wait the interval (the CSMS may configure us meanwhile), try again
        wait = self.boot_wait(interval)
        self.log.info("registration %s; BootNotification again in %d s", status, wait)
        self._arm_boot(wait)

    def boot_wait(self, interval: int) -> float:
        """The wait before the next BootNotification while Pending or Rejected (see the docstring)."""
        if interval <= 0:
            return self.retry_s
        if interval > BOOT_WAIT_MAX_S:
            self.log.warning("BootNotification interval %d s is longer than %d s: trying again after %d s",
                             interval, BOOT_WAIT_MAX_S, BOOT_WAIT_MAX_S)
        return min(BOOT_WAIT_MAX_S, max(BOOT_WAIT_MIN_S, float(interval)))

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
        except Exception:  # never the end of the heartbeats
            self.log.exception("Heartbeat failed")
            self.activity()

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
