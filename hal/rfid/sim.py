"""Simulated RFID reader: ``present()`` stands for a card held at the reader."""

from __future__ import annotations

from hal.types import IdToken, Listeners, TokenCallback


class SimReader:
    def __init__(self) -> None:
        self._listeners = Listeners()

    def on_token(self, cb: TokenCallback) -> None:
        self._listeners.add(cb)

    def present(self, token: IdToken) -> None:
        self._listeners.emit(token)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
