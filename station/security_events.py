"""Security events the station observes outside the CSMS's security requests (1.6 whitepaper ed. 3,
2.0.1 Part 2 appendix 1: the same event names), for either adapter (its ``security`` is the
shared engine, station/security_service.py):

- ``InvalidMessages``: a CSMS frame the station answered with a CallError (malformed, or a call
  that breaks its schema: station/rpc.py's FrameRejected). Non-critical, so not queued: sent at
  once (the station is online, it just got the frame) and logged, at most one event per
  :data:`INVALID_MESSAGES_INTERVAL_S`; the frames refused in between are counted in the next
  one's techInfo, so a CSMS sending bad frames in a loop causes no storm.
- ``MemoryExhaustion``: a write of the state store found the disk (or memory) full
  (station/store.py ``Store.on_full``). The outbox lives in that store, which cannot take it, so
  the event is held in memory instead (one at a time: the latest, with the count of those it
  replaced) and sent at once when online, else as soon as the station is online again; it stays
  held until the CSMS has answered it. A power cut while it is held loses it (the security log on
  disk, when it can still be written, keeps it). At most one per
  :data:`MEMORY_EXHAUSTION_INTERVAL_S`.
- ``TamperDetectionActivated``: the tamper input turned active (the enclosure's switch on a GPIO
  input, ``[hardware] tamper``, hal/tamper.py; or the local API's ``/api/tamper`` for simulated
  hardware); critical, queued in the outbox like the others.

SecurityLogWasCleared is raised by the security log itself (station/security_service.py) when its
bound drops the oldest records.
"""

from __future__ import annotations

from typing import Any

from station import logsafe
from station.core.clock import iso

INVALID_MESSAGES_INTERVAL_S = 60.0  # at most one InvalidMessages event a minute
MEMORY_EXHAUSTION_INTERVAL_S = 600.0  # at most one MemoryExhaustion event in ten minutes
MEMORY_RETRY_S = 60.0  # a held MemoryExhaustion the CSMS refused is sent again after this long


class SecurityEventSources:
    """Turns what the link, the store and the tamper input report into security events."""

    def __init__(self, ad: Any) -> None:  # an Ocpp16Adapter or Ocpp201Adapter
        self.ad = ad
        self._invalid_at: float | None = None
        self._invalid_held = 0
        self._full_at: float | None = None
        self._reporting_full = False
        self._held_full: dict | None = None  # a MemoryExhaustion payload not yet answered by the CSMS
        self._sending_full = False
        self.tamper_active = False
        ad.store.on_full = self.storage_full

    def _send_now(self, kind: str, tech_info: str) -> None:
        """Logged in the security log and sent at once if online (not through the outbox)."""
        self.ad.security.event(kind, tech_info, queue=False)
        if not self.ad.online:
            return
        payload = {"type": kind, "timestamp": iso(self.ad.scheduler.now())}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self.ad.spawn(self.ad.send_quietly("SecurityEventNotification", payload))

    def invalid_message(self, reason: str) -> None:
        """The link answered a CSMS frame with a CallError (``reason``: why)."""
        now = self.ad.scheduler.monotonic()
        if self._invalid_at is not None and now - self._invalid_at < INVALID_MESSAGES_INTERVAL_S:
            self._invalid_held += 1
            return
        held, self._invalid_held, self._invalid_at = self._invalid_held, 0, now
        more = f" (and {held} more since the last report)" if held else ""
        self._send_now("InvalidMessages", logsafe.text(reason, 200) + more)

    def storage_full(self, e: BaseException) -> None:
        """The store could not write: disk or memory full."""
        if self._reporting_full:  # the report itself wrote to the full store
            return
        now = self.ad.scheduler.monotonic()
        if self._full_at is not None and now - self._full_at < MEMORY_EXHAUSTION_INTERVAL_S:
            return
        self._full_at = now
        self._reporting_full = True
        try:
            self.ad.log.error("state store: %s", logsafe.text(e, 200))
            tech_info = f"state store: {logsafe.text(e, 200)}"
            self.ad.security.event("MemoryExhaustion", tech_info, queue=False)  # the log file may still take it
            if self._held_full is not None:
                tech_info += " (an earlier one not yet delivered)"
            self._held_full = {"type": "MemoryExhaustion", "timestamp": iso(self.ad.scheduler.now()),
                               "techInfo": tech_info[:255]}
            self.deliver_held()
        finally:
            self._reporting_full = False

    def deliver_held(self) -> None:
        """Send a held MemoryExhaustion if online (called when it is raised and whenever the
        station is online again); it stays held until the CSMS has answered it."""
        if self._held_full is None or self._sending_full or not self.ad.online:
            return
        self._sending_full = True
        self.ad.spawn(self._deliver_full(self._held_full))

    async def _deliver_full(self, payload: dict) -> None:
        try:
            answered = await self.ad.send_quietly("SecurityEventNotification", payload) is not None
        finally:
            self._sending_full = False
        if answered and self._held_full is payload:
            self._held_full = None
        elif self._held_full is not None:  # refused or lost: again after a while (or at the next connection)
            self.ad.scheduler.call_later(MEMORY_RETRY_S, self.deliver_held)

    def tamper(self, active: bool) -> None:
        """The tamper input: TamperDetectionActivated when it turns active (once per activation)."""
        if active and not self.tamper_active:
            self.ad.security.event("TamperDetectionActivated", "tamper input active")
        self.tamper_active = active


__all__ = ["INVALID_MESSAGES_INTERVAL_S", "MEMORY_EXHAUSTION_INTERVAL_S", "SecurityEventSources"]
