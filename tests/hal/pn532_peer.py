"""A fake NXP PN532 on a pseudo-terminal, answering host frames the way the chip does over HSU.

The reader under test opens :attr:`FakePn532.path` (the pty slave) with pyserial; a thread reads
the master side, parses real frames (start code, LEN/LCS, TFI ``D4``, DCS), and sends the ACK
frame and then the response frame (TFI ``D5``, response code = command code + 1). Like the chip it

* sleeps until the HSU wake-up byte ``0x55`` arrives (after :meth:`power_cycle` too),
* resends its last response when the host sends a NACK, forgets a command on a host ACK,
* ignores frames with a wrong checksum (counted in :attr:`bad_frames`),
* waits for a card for ever in InListPassiveTarget while MxRtyPassiveActivation is 0xFF (its
  power-on default), so a host that does not set RFConfiguration MaxRetries gets no answer.

Anything a real chip would object to is listed in :attr:`violations`.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass

ACK = bytes.fromhex("0000FF00FF00")
ERROR_FRAME = bytes.fromhex("0000FF01FF7F8100")


@dataclass
class Card:
    """A card in the field: ISO 14443 A (``uid`` = NFCID1) or B (``uid`` = PUPI)."""

    uid: bytes
    kind: str = "A"
    sens_res: bytes = b"\x00\x44"
    sel_res: int = 0x00


def response_frame(data: bytes, corrupt: bool = False) -> bytes:
    body = b"\xd5" + data
    ln = len(body)
    dcs = (-sum(body)) & 0xFF
    if corrupt:
        dcs ^= 0x5A
    return bytes([0x00, 0x00, 0xFF, ln, (-ln) & 0xFF]) + body + bytes([dcs, 0x00])


class FakePn532:
    def __init__(self, firmware: bytes = bytes([0x32, 0x01, 0x06, 0x07])) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.firmware = firmware
        self.cards: list[Card] = []
        self.silent = False  # True: the chip does not answer at all (unplugged, hung)
        self.corrupt_responses = 0  # the next N response frames go out with a wrong DCS
        self.asleep = True
        self.sam_configured = False
        self.max_retries_passive = 0xFF
        self.commands: list[int] = []
        self.polls = 0  # InListPassiveTarget commands answered
        self.nacks = 0
        self.host_acks = 0
        self.bad_frames = 0
        self.wakeups = 0
        self.violations: list[str] = []
        self._last: bytes | None = None
        self._buf = bytearray()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-pn532", daemon=True)
        self._thread.start()

    # --- test controls -------------------------------------------------------------------

    def put(self, *cards: Card) -> None:
        with self._lock:
            self.cards = list(cards)

    def remove(self) -> None:
        self.put()

    def power_cycle(self) -> None:
        """The chip restarts: asleep, not configured, default retries."""
        with self._lock:
            self.asleep = True
            self.sam_configured = False
            self.max_retries_passive = 0xFF
            self._buf.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- the chip ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.02)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                time.sleep(0.02)
                continue
            with self._lock:
                if self.silent:
                    continue
                self._feed(data)

    def _send(self, data: bytes) -> None:
        os.write(self.master, data)

    def _feed(self, data: bytes) -> None:
        if self.asleep:
            i = data.find(b"\x55")
            if i < 0:
                return  # a sleeping chip hears nothing but the wake-up
            self.asleep = False
            self.wakeups += 1
            data = data[i:]
        self._buf += data
        while True:
            i = self._buf.find(b"\x00\xff")
            if i < 0:
                del self._buf[:-1]
                return
            if len(self._buf) < i + 4:
                return
            ln, lcs = self._buf[i + 2], self._buf[i + 3]
            if ln == 0x00 and lcs == 0xFF:  # ACK from host: abort the current command
                self.host_acks += 1
                del self._buf[: i + 4]
                continue
            if ln == 0xFF and lcs == 0x00:  # NACK: send the last response again
                self.nacks += 1
                del self._buf[: i + 4]
                if self._last is not None:
                    self._send(self._last)
                continue
            if (ln + lcs) & 0xFF:
                self.bad_frames += 1
                del self._buf[: i + 2]
                continue
            end = i + 4 + ln + 1
            if len(self._buf) < end:
                return
            body = bytes(self._buf[i + 4 : end])
            del self._buf[:end]
            if sum(body) & 0xFF or ln < 2:
                self.bad_frames += 1
                continue
            if body[0] != 0xD4:
                self.violations.append(f"frame with TFI {body[0]:02X}")
                continue
            self._command(body[1], body[2:-1])

    def _respond(self, data: bytes | None) -> None:
        self._send(ACK)
        if data is None:
            self._last = None
            return
        corrupt = self.corrupt_responses > 0
        if corrupt:
            self.corrupt_responses -= 1
        self._last = response_frame(data)
        self._send(response_frame(data, corrupt=corrupt))

    def _command(self, code: int, params: bytes) -> None:
        self.commands.append(code)
        if code != 0x14 and not self.sam_configured:
            self.violations.append(f"command {code:02X} before SAMConfiguration (chip still in LowVbat)")
        if code == 0x02:  # GetFirmwareVersion
            self._respond(bytes([0x03]) + self.firmware)
        elif code == 0x14:  # SAMConfiguration
            if params[:1] != b"\x01":
                self.violations.append(f"SAMConfiguration mode {params.hex()}")
            self.sam_configured = True
            self._respond(b"\x15")
        elif code == 0x32:  # RFConfiguration
            if params[:1] == b"\x05" and len(params) == 4:
                self.max_retries_passive = params[3]
            self._respond(b"\x33")
        elif code == 0x4A:  # InListPassiveTarget
            self._list(params)
        else:
            self.violations.append(f"unexpected command {code:02X}")
            self._send(ACK + ERROR_FRAME)

    def _list(self, params: bytes) -> None:
        if len(params) < 2 or params[0] not in (1, 2):
            self.violations.append(f"InListPassiveTarget params {params.hex()}")
        brty = params[1]
        kind = {0x00: "A", 0x03: "B"}.get(brty)
        if kind is None:
            self.violations.append(f"InListPassiveTarget BrTy {brty:02X}")
            return self._respond(b"\x4b\x00")
        if kind == "B" and len(params) < 3:
            self.violations.append("InListPassiveTarget type B without AFI")
        card = next((c for c in self.cards if c.kind == kind), None)
        if card is None:
            if self.max_retries_passive == 0xFF:
                self._send(ACK)  # waits for a card for ever
                return
            self.polls += 1
            return self._respond(b"\x4b\x00")
        self.polls += 1
        if kind == "A":
            target = bytes([0x01]) + card.sens_res + bytes([card.sel_res, len(card.uid)]) + card.uid
        else:
            atqb = b"\x50" + card.uid + bytes.fromhex("00000000") + bytes.fromhex("008171")
            target = bytes([0x01]) + atqb + b"\x01\x00"
        self._respond(b"\x4b\x01" + target)
