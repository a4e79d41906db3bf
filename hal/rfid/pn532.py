"""NXP PN532 NFC controller on a UART (HSU), read with pyserial.

Frames follow the PN532 user manual (UM0701-02, chapter 6.2): preamble ``00``, start code
``00 FF``, LEN, LCS (LEN + LCS = 0), TFI (``D4`` host to PN532, ``D5`` PN532 to host), data, DCS
(TFI + data + DCS = 0), postamble ``00``. The chip acknowledges every command with the ACK frame
``00 00 FF 00 FF 00`` before its response; the host asks for a response again with the NACK frame
``00 00 FF FF 00 00``, and aborts a command with an ACK.

At start the reader wakes the chip (``55 55`` and zeros: HSU wake-up), sends SAMConfiguration
(normal mode, also takes the chip out of LowVbat), checks GetFirmwareVersion (IC ``0x32``) and
limits the passive activation retries (RFConfiguration MaxRetries) so InListPassiveTarget answers
"no target" at once instead of waiting for a card. A missing or wrong device raises
:class:`~hal.types.ReaderError` naming the port.

Then a background task polls InListPassiveTarget (106 kbps type A, and type B if ``type_b``) every
``poll_interval_s``. A card is reported once; it is reported again only after a poll found no
card or a different one. Checksum errors and NACKs are answered with a NACK / a resend; a command
without an answer is sent again; a chip that stops answering raises ``Fault("ReaderFailure",
True)`` once, and ``Fault("ReaderFailure", False)`` when it answers again (it is set up afresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from hal.aio import stop_task
from hal.rfid import ReaderEvents
from hal.section import Key
from hal.types import Fault, IdToken, ReaderError

log = logging.getLogger(__name__)

BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)

KEYS: dict[str, Key] = {
    "port": Key(str, doc="serial device of the PN532, e.g. /dev/serial0 or /dev/ttyUSB0"),
    "baudrate": Key(int, 115200, choices=BAUDRATES, doc="HSU speed; the chip starts at 115200"),
    "poll_interval_s": Key((int, float), 0.2, min=0.02, max=10.0, doc="time between two polls for a card"),
    "timeout_s": Key((int, float), 1.0, min=0.05, max=10.0, doc="longest wait for the chip's answer to a command"),
    "type_b": Key(bool, False, doc="also poll for ISO 14443 B cards (reported by their PUPI)"),
}

HOST_TO_PN532 = 0xD4
PN532_TO_HOST = 0xD5
ACK = bytes.fromhex("0000FF00FF00")
NACK = bytes.fromhex("0000FFFF0000")
WAKEUP = bytes([0x55, 0x55]) + bytes(14)

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_LIST_PASSIVE_TARGET = 0x4A

BR_106_TYPE_A = 0x00
BR_106_TYPE_B = 0x03

PN532_IC = 0x32
ATTEMPTS = 3  # one command: first try and two more after a timeout / a bad answer
READ_SLICE_S = 0.05  # longest single blocking read, so stop() is noticed at once


def frame(data: bytes) -> bytes:
    """A normal information frame from host to PN532 around ``data`` (command code and parameters)."""
    body = bytes([HOST_TO_PN532]) + data
    if len(body) > 255:
        raise ValueError("PN532 frame too long for a normal frame")
    ln = len(body)
    return bytes([0x00, 0x00, 0xFF, ln, (-ln) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF, 0x00])


class FrameError(Exception):
    """A frame that failed its length or data checksum."""


class _Timeout(Exception):
    pass


class _Stopped(Exception):
    pass


class _NoAnswer(Exception):
    """The chip did not give a good answer in ``ATTEMPTS`` tries (or the port failed)."""


class Pn532Reader(ReaderEvents):
    """An RFID reader on a PN532 connected by UART. See the module docstring."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        poll_interval_s: float = 0.2,
        timeout_s: float = 1.0,
        type_b: bool = False,
        serial_factory: Any = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.poll_interval_s = float(poll_interval_s)
        self.timeout_s = float(timeout_s)
        self.type_b = type_b
        self._serial_factory = serial_factory
        ReaderEvents.__init__(self)
        self._ser: Any = None
        self._rx = bytearray()
        self._io = threading.Lock()  # one command at a time; close() waits for the one in flight
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._ready = False  # chip woken and configured since the port was opened
        self.fault_active = False
        self.present: str | None = None  # UID of the card on the reader as of the last poll
        self.firmware: tuple[int, int, int, int] | None = None

    # --- asyncio side -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stop.clear()
        try:
            await asyncio.to_thread(self._locked, self._setup)
        except _Stopped:
            return
        except _NoAnswer as e:
            await asyncio.to_thread(self._close)
            # report it, and keep trying in the background: a reader plugged in (or repaired)
            # later is set up and used without a restart of the station
            message = f"PN532 reader on {self.port}: {e}"
            self._set_fault(True, message)
            self._task = asyncio.create_task(self._poll_loop(), name=f"pn532 {self.port}")
            raise ReaderError(message) from None
        self._task = asyncio.create_task(self._poll_loop(), name=f"pn532 {self.port}")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        await stop_task(task)
        # The command in flight (if any) sees the stop flag within READ_SLICE_S.
        await asyncio.to_thread(self._close)

    async def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                uid = await asyncio.to_thread(self._locked, self._poll)
            except _Stopped:
                return
            except _NoAnswer as e:
                self._set_fault(True, f"PN532 reader on {self.port} does not answer: {e}")
                await asyncio.sleep(self.poll_interval_s)
                continue
            self._set_fault(False, f"PN532 reader on {self.port} answers again")
            if uid is None:
                self.present = None
            elif uid != self.present:
                self.present = uid
                log.info("PN532 %s: card %s", self.port, uid)
                self._tokens.emit(IdToken(uid, "ISO14443"))
            await asyncio.sleep(self.poll_interval_s)

    def _set_fault(self, active: bool, info: str) -> None:
        if active == self.fault_active:
            return
        self.fault_active = active
        (log.error if active else log.info)("%s", info)
        self._faults.emit(Fault("ReaderFailure", active, info))

    # --- serial side (runs in a worker thread) --------------------------------------------

    def _locked(self, fn: Any) -> Any:
        with self._io:
            if self._stop.is_set():
                raise _Stopped
            return fn()

    def _open(self) -> None:
        factory = self._serial_factory
        if factory is None:
            import serial  # pyserial, imported when a PN532 is used

            factory = serial.Serial
        try:
            self._ser = factory(
                self.port, baudrate=self.baudrate, bytesize=8, parity="N", stopbits=1,
                timeout=READ_SLICE_S, write_timeout=self.timeout_s,
            )
        except (OSError, ValueError) as e:  # serial.SerialException is an OSError
            self._ser = None
            raise _NoAnswer(f"cannot open the port: {e}") from None
        self._rx.clear()

    def _close(self) -> None:
        with self._io:
            self._drop_port()

    def _drop_port(self) -> None:
        ser, self._ser = self._ser, None
        self._ready = False
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()

    def _setup(self) -> None:
        """Open the port if needed, wake the chip and configure it."""
        if self._ser is None:
            self._open()
        self._ready = False
        try:
            self._command(CMD_SAM_CONFIGURATION, bytes([0x01, 0x14, 0x01]), wake=True)  # normal mode
        except _NoAnswer as e:
            raise _NoAnswer(f"no PN532 answers ({e})") from None
        fw = self._command(CMD_GET_FIRMWARE_VERSION)
        if len(fw) < 4 or fw[0] != PN532_IC:
            raise _NoAnswer(f"the device answering is not a PN532 (GetFirmwareVersion gave {fw.hex(' ')})")
        self.firmware = (fw[0], fw[1], fw[2], fw[3])
        # MaxRetries: MxRtyATR default, MxRtyPSL default, MxRtyPassiveActivation 1 (default: forever)
        self._command(CMD_RF_CONFIGURATION, bytes([0x05, 0xFF, 0x01, 0x01]))
        self._ready = True
        log.info("PN532 on %s: firmware %d.%d (support 0x%02X)", self.port, fw[1], fw[2], fw[3])

    def _poll(self) -> str | None:
        """One poll: the UID (upper-case hex) of a card in the field, or None."""
        if not self._ready:
            self._setup()
        uid = self._list_target(BR_106_TYPE_A)
        if uid is None and self.type_b:
            uid = self._list_target(BR_106_TYPE_B)
        return uid

    def _list_target(self, brty: int) -> str | None:
        params = bytes([0x01, brty]) + (b"\x00" if brty == BR_106_TYPE_B else b"")  # MaxTg 1; type B: AFI 0
        for _ in range(ATTEMPTS):
            data = self._command(CMD_IN_LIST_PASSIVE_TARGET, params)
            try:
                return parse_target(data, brty)
            except ValueError as e:
                log.warning("PN532 %s: bad InListPassiveTarget answer %s (%s)", self.port, data.hex(" "), e)
        raise _NoAnswer("InListPassiveTarget answers are malformed")

    def _command(self, code: int, params: bytes = b"", wake: bool = False) -> bytes:
        """Send one command and return the response data after the response code."""
        out = (WAKEUP if wake else b"") + frame(bytes([code]) + params)
        problem = ""
        for attempt in range(ATTEMPTS):
            if self._ser is None:
                self._open()
            try:
                return self._exchange(code, out)
            except _Timeout:
                problem = f"no answer to command 0x{code:02X} within {self.timeout_s:g} s"
            except FrameError as e:
                problem = f"bad answer to command 0x{code:02X}: {e}"
            except OSError as e:  # the port went away (USB adapter unplugged...)
                self._drop_port()
                raise _NoAnswer(f"serial port error: {e}") from None
            log.debug("PN532 %s: %s (try %d)", self.port, problem, attempt + 1)
            if self._stop.is_set():
                raise _Stopped
            with contextlib.suppress(OSError):
                self._write(ACK)  # abort whatever the chip is still doing
                self._ser.reset_input_buffer()
            self._rx.clear()
            out = WAKEUP + frame(bytes([code]) + params)  # the chip may have been reset: wake it again
        self._ready = False  # set the chip up afresh once it answers again
        raise _NoAnswer(problem)

    def _exchange(self, code: int, out: bytes) -> bytes:
        self._ser.reset_input_buffer()
        self._rx.clear()
        self._write(out)
        deadline = time.monotonic() + self.timeout_s
        kind, _ = self._read_frame(deadline)
        if kind != "ack":
            raise FrameError(f"expected ACK, got {kind}")
        for _ in range(ATTEMPTS):
            try:
                kind, data = self._read_frame(deadline)
            except FrameError as e:
                log.debug("PN532 %s: %s, sending NACK", self.port, e)
                self._write(NACK)  # the chip sends its response again
                continue
            if kind == "ack":  # a stray ACK: keep waiting for the response
                continue
            if kind == "nack":
                raise FrameError("PN532 sent NACK")
            if data[:1] == b"\x7f":
                raise FrameError("PN532 sent a syntax error frame")
            if len(data) < 2 or data[0] != PN532_TO_HOST or data[1] != code + 1:
                raise FrameError(f"unexpected response {data.hex(' ')}")
            return data[2:]
        raise FrameError("response checksum wrong after NACKs")

    def _write(self, data: bytes) -> None:
        self._ser.write(data)
        self._ser.flush()

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self._rx) < n:
            if self._stop.is_set():
                raise _Stopped
            if time.monotonic() > deadline:
                raise _Timeout
            waiting = self._ser.in_waiting
            self._rx += self._ser.read(max(1, min(waiting, 512)))
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def _read_frame(self, deadline: float) -> tuple[str, bytes]:
        """Read one frame: ("ack", b""), ("nack", b"") or ("data", TFI + data). Raises FrameError."""
        prev = -1
        while True:  # start code 00 FF (the preamble and a previous postamble are skipped)
            b = self._take(1, deadline)[0]
            if prev == 0x00 and b == 0xFF:
                break
            prev = b
        ln, lcs = self._take(2, deadline)
        if ln == 0x00 and lcs == 0xFF:
            return "ack", b""
        if ln == 0xFF and lcs == 0x00:
            return "nack", b""
        if ln == 0xFF and lcs == 0xFF:  # extended information frame
            lenm, lenl, lcs = self._take(3, deadline)
            if (lenm + lenl + lcs) & 0xFF:
                raise FrameError("extended frame length checksum wrong")
            ln = lenm << 8 | lenl
        elif (ln + lcs) & 0xFF:
            raise FrameError("length checksum wrong")
        if ln == 0:
            raise FrameError("empty frame")
        body = self._take(ln + 1, deadline)
        if sum(body) & 0xFF:
            raise FrameError("data checksum wrong")
        return "data", body[:-1]


def parse_target(data: bytes, brty: int) -> str | None:
    """The UID (type A NFCID1) or PUPI (type B) of the first target in an InListPassiveTarget answer."""
    if not data:
        raise ValueError("empty answer")
    if data[0] == 0:
        return None
    if brty == BR_106_TYPE_A:
        # Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1, [ATS]
        if len(data) < 6:
            raise ValueError("short type A target data")
        n = data[5]
        uid = data[6:6 + n]
        if n not in (4, 7, 10) or len(uid) != n:
            raise ValueError(f"NFCID1 length {n}")
        return uid.hex().upper()
    # Tg, ATQB (12: 0x50, PUPI (4), application data (4), protocol info (3)), ATTRIB_RES length, ...
    if len(data) < 14 or data[2] != 0x50:
        raise ValueError("bad type B target data")
    return data[3:7].hex().upper()


def build(values: dict[str, Any], ctx: Any) -> Pn532Reader:
    return Pn532Reader(
        values["port"],
        baudrate=values["baudrate"],
        poll_interval_s=values["poll_interval_s"],
        timeout_s=values["timeout_s"],
        type_b=values["type_b"],
    )
