"""What every OCPP adapter does the same way, whatever the version: its calls to the CSMS over the
link (each one counts as activity for the heartbeat), the registration state, whether it is
online, and the outbox's flush before a reset or a stop. The version's adapter
(station/ocpp16/adapter.py, station/ocpp201/adapter.py) sets ``link``, ``registrar``, ``outbox``
and ``log`` and adds its vocabulary and handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from station.core.clock import Clock
from station.link import CallErrorReceived, Link, NotConnected
from station.scheduler import LoopScheduler, Scheduler

if TYPE_CHECKING:
    from station.outbox import Outbox
    from station.registration import Registration


def as_scheduler(clock: Clock) -> Scheduler:
    """The adapter's timers need a Scheduler; a bare Clock (now/monotonic only) gets the loop's."""
    return clock if hasattr(clock, "call_later") and hasattr(clock, "call_at") else LoopScheduler()  # type: ignore[return-value]


class AdapterBase:
    link: Link | None
    registrar: Registration
    outbox: Outbox
    log: logging.Logger
    scheduler: Scheduler
    spawn: Callable[..., Any]

    def _registration(self, heartbeat_interval: Callable[[], float]) -> Registration:
        """BootNotification and Heartbeat (station/registration.py) with the version's boot payload
        and answer handling (``boot_payload()``, ``_boot_answered()``)."""
        from station.registration import Registration  # noqa: PLC0415

        return Registration(
            scheduler=self.scheduler,
            log=self.log,
            call=self.call,
            spawn=self.spawn,
            connected=lambda: self.link is not None and self.link.is_connected,
            boot_payload=self.boot_payload,  # type: ignore[attr-defined]
            on_answer=self._boot_answered,  # type: ignore[attr-defined]
            heartbeat_interval=heartbeat_interval,
        )

    @property
    def registration(self) -> str | None:
        """Accepted | Pending | Rejected, None before the first answer."""
        return self.registrar.status

    @property
    def registered(self) -> bool:
        return self.registrar.accepted

    @property
    def online(self) -> bool:
        """Connected and registered: messages may go to the CSMS."""
        return self.link is not None and self.link.is_connected and self.registrar.accepted

    async def call(self, action: str, payload: dict, timeout: float | None = None, unique_id: str | None = None) -> dict:
        if self.link is None:
            raise NotConnected(action)
        resp = await (self.link.call(action, payload, timeout, unique_id=unique_id) if unique_id is not None
                      else self.link.call(action, payload, timeout))
        self.registrar.activity()
        return resp

    async def send_quietly(self, action: str, payload: dict) -> dict | None:
        """A call whose failure is only logged (None): status reports, triggered messages."""
        try:
            return await self.call(action, payload)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("%s failed: %s", action, e)
            return None

    def outbox_empty(self) -> bool:
        return len(self.outbox) == 0

    async def flush_outbox(self, timeout: float) -> None:
        """Give queued transaction messages a chance to go out (before a reset or a stop)."""
        await self.outbox.flush(timeout)
