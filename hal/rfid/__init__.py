"""RFID readers. Backends: ``sim`` (tokens pushed by the API), ``pcsc`` (pyscard), ``pn532`` (UART).

A reader calls its token listeners once per card presented; a card that stays on the reader is
not reported again until it has been removed.
"""

from __future__ import annotations

from typing import Protocol

from hal.types import TokenCallback


class RfidReader(Protocol):
    def on_token(self, cb: TokenCallback) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
