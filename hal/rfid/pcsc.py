"""Contactless cards on a PC/SC reader (pcsc-lite), through pyscard's ``smartcard.scard`` API.

A background task watches one reader (the first one whose name contains ``reader``, any case; the
first reader when ``reader`` is empty) with SCardGetStatusChange, waking at least every
``poll_interval_s`` to look for the reader again. When a card arrives it connects (shared), sends
the PC/SC part 3 pseudo-APDU GET DATA UID ``FF CA 00 00 00`` and reports the UID (SW ``90 00``)
once; it disconnects leaving the card powered. The card type comes from the ATR: a PC/SC part 3
contactless ATR carries the RID ``A0 00 00 03 06`` and a standard byte (``0x01``-``0x07`` ISO 14443
A/B -> "ISO14443", ``0x09``-``0x0C`` ISO 15693 -> "ISO15693"); other contactless ATRs (built from
an ISO 14443-4 ATS / ATQB) are "ISO14443".

A card that stays is not reported again; it is after the reader saw it removed (or, with
pcsc-lite's card event counter, removed and put back between two looks). A reader that disappears
(unplugged, or the PC/SC service gone) raises ``Fault("ReaderFailure", True)`` once and
``Fault("ReaderFailure", False)`` when it is back; a card that stayed on it all along is not
reported again, even if the reader first looks empty for up to ``REAPPEAR_GRACE_S`` (a second
report of the same card would read as a second tap, e.g. "stop charging").

pyscard is imported on :meth:`PcscReader.start`, so configs can be checked without it. All PC/SC
calls are blocking and run in a worker thread; :meth:`PcscReader.stop` cancels the wait with
SCardCancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from hal.rfid import ReaderEvents
from hal.section import Key
from hal.types import Fault, IdToken, ReaderError

log = logging.getLogger(__name__)

KEYS: dict[str, Key] = {
    "reader": Key(str, "", doc="part of the PC/SC reader name (any case); empty: the first reader"),
    "poll_interval_s": Key((int, float), 0.3, min=0.05, max=10.0, doc="longest time between two looks at the reader"),
}

GET_DATA_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
PCSC_RID = bytes.fromhex("A000000306")
UID_READ_TRIES = 3
REAPPEAR_GRACE_S = 3.0  # after a reader is back: how long a card on it may take to show up again


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of an ATR (ISO/IEC 7816-3): after T0 and the TA/TB/TC/TD chain."""
    if len(atr) < 2:
        return b""
    k = atr[1] & 0x0F
    y = atr[1] >> 4
    i = 2
    while True:
        i += bin(y & 0x7).count("1")  # TAi, TBi, TCi
        if not y & 0x8:
            break
        if i >= len(atr):
            return b""
        y = atr[i] >> 4  # TDi
        i += 1
    return atr[i : i + k]


def token_type(atr: bytes) -> str:
    """OCPP IdTokenEnumType for a card with this ATR: "ISO15693" or "ISO14443"."""
    hist = historical_bytes(atr)
    at = hist.find(PCSC_RID)
    if at >= 0 and at + len(PCSC_RID) < len(hist):
        standard = hist[at + len(PCSC_RID)]
        if 0x09 <= standard <= 0x0C:
            return "ISO15693"
    return "ISO14443"


def _u(rv: int) -> int:
    return rv & 0xFFFFFFFF


class PcscReader(ReaderEvents):
    """An RFID reader on PC/SC. See the module docstring. ``scard``: the ``smartcard.scard`` module."""

    def __init__(self, reader: str = "", poll_interval_s: float = 0.3, scard: Any = None) -> None:
        self.match = reader
        self.poll_interval_s = float(poll_interval_s)
        self._sc = scard
        ReaderEvents.__init__(self)
        self._ctx: Any = None
        self._ctx_lock = threading.Lock()
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        # worker thread state
        self.reader_name: str | None = None
        self._state = 0  # last dwEventState seen for reader_name (pcsc-lite: event counter in the high word)
        self._counter: int | None = None
        self._handled = False  # the card now on the reader was read (or given up on)
        self._tries = 0
        self._retry_atr: bytes | None = None  # ATR of a card on the reader whose UID could not be read yet
        self.present: str | None = None  # UID of the card on the reader, None once it was seen empty
        self._settling = False  # the reader is back from a fault and has not shown a card yet
        self._grace_until = 0.0  # while settling, until then an empty reader keeps ``present`` (see _step)
        self.fault_active = False

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._sc is None:
            try:
                from smartcard import scard
            except ImportError as e:
                raise ReaderError(
                    f"PC/SC reader: pyscard is not installed ({e}); install it with 'pip install pyscard'"
                    " (building it needs libpcsclite-dev and swig) and run pcscd"
                ) from None
            self._sc = scard
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="pcsc reader")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        await asyncio.to_thread(self._cancel)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=max(1.0, 2 * self.poll_interval_s))
        except TimeoutError:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(self._release)

    def _cancel(self) -> None:
        with self._ctx_lock:
            if self._ctx is not None:
                self._sc.SCardCancel(self._ctx)

    def _release(self) -> None:
        with self._ctx_lock:
            ctx, self._ctx = self._ctx, None
        if ctx is not None:
            with contextlib.suppress(Exception):
                self._sc.SCardReleaseContext(ctx)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                events, idle = await asyncio.to_thread(self._step)
            except Exception as e:  # a pyscard surprise must not end the reader
                log.exception("PC/SC reader: unexpected error")
                events, idle = self._missing(f"PC/SC error: {e}"), True
            for ev in events:
                if isinstance(ev, Fault):
                    (log.error if ev.active else log.info)("%s", ev.info)
                    self._faults.emit(ev)
                else:
                    log.info("PC/SC %s: card %s (%s)", self.reader_name, ev.id_token, ev.type)
                    self._tokens.emit(ev)
            if idle and not self._stop.is_set():
                await asyncio.sleep(self.poll_interval_s)

    # --- worker thread ---------------------------------------------------------------------

    def _msg(self, rv: int) -> str:
        try:
            return f"{self._sc.SCardGetErrorMessage(rv)} (0x{_u(rv):08X})"
        except Exception:
            return f"0x{_u(rv):08X}"

    def _missing(self, info: str) -> list[Any]:
        self.reader_name = None
        if self.fault_active:
            return []
        self.fault_active = True
        return [Fault("ReaderFailure", True, info)]

    def _pick(self, names: list[str]) -> str | None:
        want = self.match.lower()
        return next((n for n in names if want in n.lower()), None)

    def _step(self) -> tuple[list[Any], bool]:
        """One look at the reader: (events to emit, whether to pause before the next look)."""
        sc = self._sc
        if self._stop.is_set():
            return [], False
        with self._ctx_lock:
            if self._ctx is None:
                rv, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
                if _u(rv) != sc.SCARD_S_SUCCESS:
                    return self._missing(f"PC/SC service not available: {self._msg(rv)}"), True
                self._ctx = ctx
            ctx = self._ctx
        rv, names = sc.SCardListReaders(ctx, [])
        if _u(rv) == _u(sc.SCARD_E_NO_READERS_AVAILABLE):
            names = []
        elif _u(rv) != sc.SCARD_S_SUCCESS:
            self._release()
            return self._missing(f"PC/SC service not available: {self._msg(rv)}"), True
        name = self._pick(list(names or []))
        if name is None:
            which = f"matching {self.match!r} " if self.match else ""
            return self._missing(f"no PC/SC reader {which}(readers: {', '.join(names or []) or 'none'})"), True
        events: list[Any] = []
        if name != self.reader_name:  # first look, or the reader is back
            self.reader_name, self._state, self._counter = name, sc.SCARD_STATE_UNAWARE, None
            self._handled, self._tries, self._retry_atr = False, 0, None
            if self.fault_active:
                self.fault_active = False
                self._grace_until = time.monotonic() + REAPPEAR_GRACE_S
                self._settling = True
                events.append(Fault("ReaderFailure", False, f"PC/SC reader {name} is back"))
            else:
                log.info("PC/SC reader: using %s", name)
        timeout_ms = max(1, int(self.poll_interval_s * 1000))
        rv, states = sc.SCardGetStatusChange(ctx, timeout_ms, [(name, self._state)])
        rv = _u(rv)
        if rv in (_u(sc.SCARD_E_TIMEOUT), _u(sc.SCARD_E_CANCELLED)):
            if self._retry_atr is not None and not self._stop.is_set():  # the last read failed: try again
                self._try_read(name, self._retry_atr, events)
            return events, False
        if rv in (_u(sc.SCARD_E_UNKNOWN_READER), _u(sc.SCARD_E_READER_UNAVAILABLE)):
            return events + self._missing(f"PC/SC reader {name} is gone: {self._msg(rv)}"), True
        if rv != sc.SCARD_S_SUCCESS:
            self._release()
            return events + self._missing(f"PC/SC reader {name}: {self._msg(rv)}"), True
        _, state, atr = states[0]
        self._state = state & ~sc.SCARD_STATE_CHANGED
        if state & (sc.SCARD_STATE_UNKNOWN | sc.SCARD_STATE_UNAVAILABLE | sc.SCARD_STATE_IGNORE):
            return events + self._missing(f"PC/SC reader {name} is gone"), True
        counter = state >> 16
        # Just back from a fault, the reader may look empty until it has found again the card that
        # stayed on it all along: that card is not a new presentation. Settled at the first card
        # seen (or after the grace time): from then on, empty means removed.
        settled = not self._settling or time.monotonic() >= self._grace_until
        if state & sc.SCARD_STATE_PRESENT:
            if self._counter is not None and counter != self._counter:
                # removed and put back (or swapped) since the last look: a new presentation
                self._handled, self._tries, self._retry_atr = False, 0, None
                if settled:
                    self.present = None
            if not self._handled and not state & sc.SCARD_STATE_MUTE:
                self._try_read(name, bytes(atr or []), events)
            self._settling = False
        elif state & sc.SCARD_STATE_EMPTY:
            self._handled, self._tries, self._retry_atr = False, 0, None
            if settled:
                self.present = None
        self._counter = counter
        return events, False

    def _try_read(self, name: str, atr: bytes, events: list[Any]) -> None:
        token = self._read(name, atr)
        self._retry_atr = None if token is not None or self._handled else atr
        if token is not None:
            self._handled = True
            if token.id_token != self.present:
                self.present = token.id_token
                events.append(token)

    def _read(self, name: str, atr: bytes) -> IdToken | None:
        sc = self._sc
        uid, problem, refused = None, "", False
        rv, card, proto = sc.SCardConnect(
            self._ctx, name, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        )
        if _u(rv) != sc.SCARD_S_SUCCESS:
            problem = f"connect: {self._msg(rv)}"
        else:
            try:
                rv, resp = sc.SCardTransmit(card, proto, GET_DATA_UID)
                if _u(rv) != sc.SCARD_S_SUCCESS:
                    problem = f"GET DATA UID: {self._msg(rv)}"
                elif len(resp) < 3 or resp[-2:] != [0x90, 0x00]:
                    sw = bytes(resp[-2:]).hex(" ").upper()
                    problem = f"GET DATA UID answered SW {sw or 'nothing'} (no contactless card?)"
                    refused = True
                else:
                    uid = bytes(resp[:-2]).hex().upper()
            finally:
                sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
        if uid is not None:
            return IdToken(uid, token_type(atr))
        self._tries += 1
        if refused:
            if self._tries >= UID_READ_TRIES:
                self._handled = True  # the card does not give a UID: leave it until it is removed
                log.warning("PC/SC %s: no UID from the card (ATR %s): %s", name, atr.hex(" ").upper(), problem)
        elif self._tries == UID_READ_TRIES:  # a transport error: keep trying at every look, say so once
            log.warning("PC/SC %s: cannot read the card (ATR %s): %s; still trying", name, atr.hex(" ").upper(),
                        problem)
        return None


def build(values: dict[str, Any], ctx: Any) -> PcscReader:
    return PcscReader(values["reader"], poll_interval_s=values["poll_interval_s"])
