"""RFID readers. Backends: ``sim`` (tokens pushed by the API), ``pcsc`` (pyscard), ``pn532`` (UART).

A reader calls its token listeners once per card presented; a card that stays on the reader is
not reported again until it has been removed.
"""

from __future__ import annotations

from typing import Protocol

from hal.types import FaultCallback, Listeners, TokenCallback


class RfidReader(Protocol):
    def on_token(self, cb: TokenCallback) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class ReaderEvents:
    """What every real reader reports: tokens (cards presented) and ReaderFailure faults."""

    def __init__(self) -> None:
        self._tokens = Listeners()
        self._faults = Listeners()

    def on_token(self, cb: TokenCallback) -> None:
        self._tokens.add(cb)

    def on_fault(self, cb: FaultCallback) -> None:
        self._faults.add(cb)
