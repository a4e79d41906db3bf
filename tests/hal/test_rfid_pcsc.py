"""PC/SC reader backend (hal/rfid/pcsc.py).

Two layers:

* against :class:`FakeScard`, a test double of pyscard's ``smartcard.scard`` functions (readers
  that come and go, cards with PC/SC part 3 ATRs for ISO 14443 and ISO 15693, the pcsc-lite card
  event counter, SCardCancel) — always run, pyscard not needed;
* against a real PC/SC stack: pcscd on a private socket with the vsmartcard ``vpcd`` driver and a
  virtual card (tests/hal/pcsc_stack.py). Needs pyscard (``pip install pyscard``, which builds
  against ``libpcsclite-dev`` with ``swig``) and the Debian packages ``pcscd vsmartcard-vpcd``
  (installed here with apt-get when missing and running as root); skipped with the reason if not.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from hal.board import build_evse, check_device
from hal.rfid.pcsc import KEYS, PcscReader, historical_bytes, token_type
from hal.section import read_section
from hal.types import Fault, IdToken, ReaderError
from tests.hal import waits
from tests.hal.pcsc_stack import GET_DATA_UID, contactless_atr

ATR_14443A = contactless_atr(0x03, 0x0001)  # MIFARE Classic 1K
ATR_15693 = contactless_atr(0x0B, 0x000C)  # an ISO 15693 tag (PC/SC part 3 standard byte 0x0B)
ATR_DESFIRE = bytes.fromhex("3B8180018080")  # ISO 14443-4 card: historical bytes from its ATS


wait_for = functools.partial(waits.wait_for, timeout=5.0)


# --- ATR parsing ------------------------------------------------------------------------


def test_contactless_atrs():
    assert ATR_14443A.hex().upper() == "3B8F8001804F0CA000000306030001000000006A"  # as an ACR122U shows a MIFARE 1K
    assert historical_bytes(ATR_14443A)[:3] == bytes.fromhex("804F0C")
    assert token_type(ATR_14443A) == "ISO14443"
    assert token_type(contactless_atr(0x07)) == "ISO14443"  # ISO 14443 B part 3
    assert token_type(ATR_15693) == "ISO15693"
    assert token_type(contactless_atr(0x09)) == "ISO15693"
    assert token_type(ATR_DESFIRE) == "ISO14443"
    assert token_type(b"") == "ISO14443"
    # TA1 TB1 TC1 and TD1 before the historical bytes
    assert historical_bytes(bytes.fromhex("3BF21100FF01" + "AABB")) == bytes.fromhex("AABB")


# --- test double of smartcard.scard -----------------------------------------------------


@dataclass
class FakeCard:
    uid: bytes
    atr: bytes = ATR_14443A
    sw: bytes = b"\x90\x00"
    fail_transmits: int = 0  # transport errors (SCARD_E_NOT_TRANSACTED) before it answers


class FakeScard:
    """The parts of ``smartcard.scard`` the backend uses, with the PC/SC (winscard) values."""

    SCARD_S_SUCCESS = 0
    SCARD_SCOPE_USER = 0
    SCARD_SHARE_SHARED = 2
    SCARD_PROTOCOL_T0 = 1
    SCARD_PROTOCOL_T1 = 2
    SCARD_LEAVE_CARD = 0
    SCARD_STATE_UNAWARE = 0x0
    SCARD_STATE_IGNORE = 0x1
    SCARD_STATE_CHANGED = 0x2
    SCARD_STATE_UNKNOWN = 0x4
    SCARD_STATE_UNAVAILABLE = 0x8
    SCARD_STATE_EMPTY = 0x10
    SCARD_STATE_PRESENT = 0x20
    SCARD_STATE_MUTE = 0x200
    SCARD_E_CANCELLED = 0x80100002
    SCARD_E_INVALID_HANDLE = 0x80100003
    SCARD_E_UNKNOWN_READER = 0x80100009
    SCARD_E_TIMEOUT = 0x8010000A
    SCARD_E_NO_SMARTCARD = 0x8010000C
    SCARD_E_NOT_TRANSACTED = 0x80100016
    SCARD_E_READER_UNAVAILABLE = 0x80100017
    SCARD_E_NO_SERVICE = 0x8010001D
    SCARD_E_NO_READERS_AVAILABLE = 0x8010002E

    def __init__(self, *readers: str) -> None:
        self.cond = threading.Condition()
        self.service = True
        self.generation = 0  # a restarted service forgets old contexts
        self.readers: dict[str, FakeCard | None] = {r: None for r in readers}
        self.counters: dict[str, int] = {r: 0 for r in readers}
        self.contexts: dict[int, int] = {}
        self.cancelled: set[int] = set()
        self.transmits: list[tuple[str, bytes]] = []
        self.dispositions: list[int] = []
        self.looks = 0
        self._next = 100
        self._handles: dict[int, str] = {}

    # controls
    def insert(self, reader: str, card: FakeCard | None) -> None:
        with self.cond:
            self.readers[reader] = card
            self.counters[reader] += 1
            self.cond.notify_all()

    def remove(self, reader: str) -> None:
        self.insert(reader, None)

    def swap_unseen(self, reader: str, card: FakeCard) -> None:
        """Card taken away and put back (or swapped) faster than a look: only the counter tells."""
        with self.cond:
            self.readers[reader] = card
            self.counters[reader] += 2
            self.cond.notify_all()

    def unplug(self, reader: str) -> FakeCard | None:
        with self.cond:
            card = self.readers.pop(reader)
            self.cond.notify_all()
            return card

    def plug(self, reader: str, card: FakeCard | None = None) -> None:
        with self.cond:
            self.readers[reader] = card
            self.counters.setdefault(reader, 0)
            self.cond.notify_all()

    def set_service(self, up: bool) -> None:
        with self.cond:
            self.service = up
            if not up:
                self.generation += 1
            self.cond.notify_all()

    # API
    def _ok(self, ctx: int) -> bool:
        return self.service and self.contexts.get(ctx) == self.generation

    def SCardEstablishContext(self, scope):  # noqa: N802 (pyscard's names)
        with self.cond:
            if not self.service:
                return self.SCARD_E_NO_SERVICE, 0
            self._next += 1
            self.contexts[self._next] = self.generation
            return 0, self._next

    def SCardReleaseContext(self, ctx):  # noqa: N802
        with self.cond:
            self.contexts.pop(ctx, None)
            return 0

    def SCardListReaders(self, ctx, groups):  # noqa: N802
        with self.cond:
            if not self._ok(ctx):
                return self.SCARD_E_NO_SERVICE, []
            if not self.readers:
                return self.SCARD_E_NO_READERS_AVAILABLE, []
            return 0, list(self.readers)

    def _state(self, reader: str) -> int:
        card = self.readers[reader]
        return (self.counters[reader] << 16) | (self.SCARD_STATE_PRESENT if card else self.SCARD_STATE_EMPTY)

    def SCardGetStatusChange(self, ctx, timeout_ms, states):  # noqa: N802
        ((reader, current),) = states
        end = time.monotonic() + timeout_ms / 1000
        with self.cond:
            try:
                while True:
                    if ctx in self.cancelled:
                        self.cancelled.discard(ctx)
                        return self.SCARD_E_CANCELLED, states
                    if not self._ok(ctx):
                        return self.SCARD_E_NO_SERVICE, []
                    if reader not in self.readers:
                        return self.SCARD_E_UNKNOWN_READER, []
                    now = self._state(reader)
                    if now != current & ~self.SCARD_STATE_CHANGED:
                        card = self.readers[reader]
                        return 0, [(reader, now | self.SCARD_STATE_CHANGED, list(card.atr) if card else [])]
                    left = end - time.monotonic()
                    if left <= 0:
                        return self.SCARD_E_TIMEOUT, states
                    self.cond.wait(left)
            finally:
                self.looks += 1

    def SCardCancel(self, ctx):  # noqa: N802
        with self.cond:
            self.cancelled.add(ctx)
            self.cond.notify_all()
            return 0

    def SCardConnect(self, ctx, reader, share, protocols):  # noqa: N802
        with self.cond:
            if not self._ok(ctx):
                return self.SCARD_E_NO_SERVICE, 0, 0
            if self.readers.get(reader) is None:
                return self.SCARD_E_NO_SMARTCARD, 0, 0
            self._next += 1
            self._handles[self._next] = reader
            return 0, self._next, self.SCARD_PROTOCOL_T1

    def SCardTransmit(self, card, protocol, apdu):  # noqa: N802
        with self.cond:
            reader = self._handles.get(card)
            c = self.readers.get(reader) if reader else None
            if c is None:
                return self.SCARD_E_INVALID_HANDLE, []
            self.transmits.append((reader, bytes(apdu)))
            if c.fail_transmits:
                c.fail_transmits -= 1
                return self.SCARD_E_NOT_TRANSACTED, []
            if bytes(apdu) == GET_DATA_UID and c.sw == b"\x90\x00":
                return 0, list(c.uid + c.sw)
            return 0, list(c.sw if c.sw != b"\x90\x00" else b"\x6d\x00")

    def SCardDisconnect(self, card, disposition):  # noqa: N802
        with self.cond:
            self._handles.pop(card, None)
            self.dispositions.append(disposition)
            return 0

    def SCardGetErrorMessage(self, rv):  # noqa: N802
        return {self.SCARD_E_NO_SERVICE: "Service not available."}.get(rv, "error")


R1 = "ACS ACR122U PICC Interface 00 00"
R2 = "Identiv uTrust 3700 F CL Reader 01 00"


@pytest.fixture
async def fake_reader():
    sc = FakeScard(R1)
    r = PcscReader("", poll_interval_s=0.05, scard=sc)
    r.tokens: list[IdToken] = []
    r.faults: list[Fault] = []
    r.on_token(r.tokens.append)
    r.on_fault(r.faults.append)
    yield sc, r
    await r.stop()


async def more_looks(sc: FakeScard, n: int = 5) -> None:
    start = sc.looks
    await wait_for(lambda: sc.looks >= start + n, what=f"{n} more looks at the reader")


async def test_card_reported_once_while_it_stays(fake_reader):
    sc, r = fake_reader
    await r.start()
    await more_looks(sc, 2)
    sc.insert(R1, FakeCard(bytes.fromhex("04A2B3C4D5E680")))
    await wait_for(lambda: r.tokens)
    await more_looks(sc, 10)
    assert r.tokens == [IdToken("04A2B3C4D5E680", "ISO14443")]
    assert sc.transmits == [(R1, GET_DATA_UID)]
    assert sc.dispositions == [sc.SCARD_LEAVE_CARD]
    assert r.faults == []


async def test_iso15693_type_from_the_atr(fake_reader):
    sc, r = fake_reader
    sc.insert(R1, FakeCard(bytes.fromhex("E004010012345678"), ATR_15693))
    await r.start()
    await wait_for(lambda: r.tokens)
    assert r.tokens == [IdToken("E004010012345678", "ISO15693")]


async def test_removed_presented_again_and_another_card(fake_reader):
    sc, r = fake_reader
    await r.start()
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: len(r.tokens) == 1)
    sc.remove(R1)
    await more_looks(sc, 2)
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: len(r.tokens) == 2)
    sc.insert(R1, FakeCard(bytes.fromhex("04112233445566"), ATR_DESFIRE))  # swapped, no empty look
    await wait_for(lambda: len(r.tokens) == 3)
    await more_looks(sc, 5)
    assert [t.id_token for t in r.tokens] == ["DEADBEEF", "DEADBEEF", "04112233445566"]


async def test_card_taken_and_put_back_between_looks(fake_reader):
    sc, r = fake_reader
    await r.start()
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: len(r.tokens) == 1)
    sc.swap_unseen(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: len(r.tokens) == 2, what="the card event counter to count")


async def test_card_without_uid_is_not_reported_and_not_read_for_ever(fake_reader):
    sc, r = fake_reader
    await r.start()
    sc.insert(R1, FakeCard(b"", bytes.fromhex("3B6800000073C84013009000"), sw=b"\x6a\x81"))  # a contact card
    await more_looks(sc, 10)
    assert r.tokens == [] and len(sc.transmits) == 3
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: r.tokens)
    assert r.tokens == [IdToken("DEADBEEF", "ISO14443")]


async def test_transport_errors_are_retried_until_the_card_answers(fake_reader):
    sc, r = fake_reader
    await r.start()
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF"), fail_transmits=5))
    await wait_for(lambda: r.tokens)
    await more_looks(sc, 5)
    assert r.tokens == [IdToken("DEADBEEF", "ISO14443")] and len(sc.transmits) == 6


async def test_reader_unplugged_and_back(fake_reader):
    sc, r = fake_reader
    await r.start()
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: r.tokens)
    card = sc.unplug(R1)
    await wait_for(lambda: r.faults, what="a fault")
    await asyncio.sleep(0.3)
    assert len(r.faults) == 1
    assert r.faults[0].error_code == "ReaderFailure" and r.faults[0].active
    assert f"PC/SC reader {R1} is gone" in r.faults[0].info
    sc.plug(R1, card)  # the card stayed on it
    await wait_for(lambda: len(r.faults) == 2, what="the fault cleared")
    assert not r.faults[1].active and R1 in r.faults[1].info
    await more_looks(sc, 5)
    assert len(r.tokens) == 1
    sc.remove(R1)
    await more_looks(sc, 1)
    sc.insert(R1, FakeCard(bytes.fromhex("01020304")))
    await wait_for(lambda: len(r.tokens) == 2)
    assert len(r.faults) == 2


async def test_card_that_stayed_is_not_reported_when_the_reader_first_looks_empty(fake_reader):
    sc, r = fake_reader
    await r.start()
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: r.tokens)
    card = sc.unplug(R1)
    await wait_for(lambda: r.faults)
    sc.plug(R1, None)  # back, but it has not found the card yet
    await wait_for(lambda: len(r.faults) == 2)
    await more_looks(sc, 2)
    sc.insert(R1, card)
    await more_looks(sc, 5)
    assert len(r.tokens) == 1
    sc.remove(R1)
    await more_looks(sc, 2)
    sc.insert(R1, card)  # a real new presentation of the same card (still in the grace time)
    await wait_for(lambda: len(r.tokens) == 2, what="the card presented again")


async def test_pcsc_service_gone_and_back(fake_reader):
    sc, r = fake_reader
    await r.start()
    await more_looks(sc, 1)
    sc.set_service(False)
    await wait_for(lambda: r.faults)
    assert r.faults[0].active and "Service not available" in r.faults[0].info
    await asyncio.sleep(0.3)
    sc.set_service(True)
    await wait_for(lambda: len(r.faults) == 2)
    assert not r.faults[1].active
    sc.insert(R1, FakeCard(bytes.fromhex("DEADBEEF")))
    await wait_for(lambda: r.tokens)


async def test_reader_chosen_by_name_and_missing_at_start():
    sc = FakeScard(R1)
    r = PcscReader("utrust", poll_interval_s=0.05, scard=sc)
    tokens: list[IdToken] = []
    faults: list[Fault] = []
    r.on_token(tokens.append)
    r.on_fault(faults.append)
    await r.start()
    try:
        await wait_for(lambda: faults)
        assert faults[0].active
        assert faults[0].info == f"no PC/SC reader matching 'utrust' (readers: {R1})"
        sc.insert(R1, FakeCard(bytes.fromhex("01020304")))  # not on the reader we use
        sc.plug(R2, FakeCard(bytes.fromhex("DEADBEEF")))
        await wait_for(lambda: tokens)
        assert tokens == [IdToken("DEADBEEF", "ISO14443")] and r.reader_name == R2
        assert [f.active for f in faults] == [True, False]
    finally:
        await r.stop()


async def test_stop_is_prompt_while_waiting_for_a_card():
    sc = FakeScard(R1)
    r = PcscReader("", poll_interval_s=5.0, scard=sc)
    await r.start()
    await wait_for(lambda: sc.looks >= 1)  # now in a 5 s SCardGetStatusChange
    await asyncio.sleep(0.05)
    t = time.monotonic()
    await r.stop()
    assert time.monotonic() - t < 0.5
    assert sc.contexts == {}  # released


async def test_start_without_pyscard(monkeypatch):
    monkeypatch.setitem(sys.modules, "smartcard", None)
    r = PcscReader()
    with pytest.raises(ReaderError, match="pip install pyscard"):
        await r.start()


def test_keys_and_board():
    values, problems = read_section({"kind": "pcsc"}, KEYS, "evse 1: reader")
    assert problems == [] and values == {"reader": "", "poll_interval_s": 0.3}
    assert check_device("reader", {"kind": "pcsc", "reader": "ACR122"}, "r") == []
    assert check_device("reader", {"kind": "pcsc", "reader": 3}, "r") == ["r.reader: must be a string, got 3"]
    assert check_device("reader", {"kind": "pcsc", "port": "/dev/x"}, "r")[0].startswith("r.port: unknown key")
    hw = build_evse(2, {"reader": {"kind": "pcsc", "reader": "ACR122"}})
    assert isinstance(hw.reader, PcscReader) and hw.reader.match == "ACR122"


# --- the real PC/SC stack ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from tests.hal.pcsc_stack import PcscDaemon, ensure_installed, ensure_pyscard

    why = ensure_pyscard() or ensure_installed()
    if why:
        pytest.skip(why)
    daemon = PcscDaemon(tmp_path_factory.mktemp("pcsc"))
    old = {k: os.environ.get(k) for k in daemon.env()}
    os.environ.update(daemon.env())  # libpcsclite reads it once per process
    try:
        daemon.start()
    except RuntimeError as e:
        pytest.skip(f"cannot run pcscd here: {e}")
    yield daemon
    daemon.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
async def real_reader(stack):
    if stack.pid is None:
        stack.start()
    r = PcscReader("virtual pcd 00 00", poll_interval_s=0.1)
    r.tokens: list[IdToken] = []
    r.faults: list[Fault] = []
    r.on_token(r.tokens.append)
    r.on_fault(r.faults.append)
    cards = []
    yield r, cards
    await r.stop()
    for c in cards:
        c.remove()
    stack.stop()  # the next test starts with a fresh pcscd and an empty reader


@pytest.mark.slow
@pytest.mark.timeout(900)  # a fresh machine first installs pcscd, vpcd and pyscard (apt, pip build)
async def test_real_stack_card_read_once_and_types(stack, real_reader):
    from tests.hal.pcsc_stack import VirtualCard

    r, cards = real_reader
    await r.start()
    await asyncio.sleep(0.3)
    assert r.faults == [] and r.reader_name == "Virtual PCD 00 00"
    card = VirtualCard(stack.port, bytes.fromhex("04A2B3C4D5E680"), ATR_14443A)
    cards.append(card)
    await wait_for(lambda: r.tokens, what="the virtual card")
    await asyncio.sleep(1.5)  # pcscd polls the card several times meanwhile
    assert r.tokens == [IdToken("04A2B3C4D5E680", "ISO14443")]
    assert card.uid_reads() == 1
    card.remove()
    await wait_for(lambda: r.present is None, what="the card seen removed")
    tag = VirtualCard(stack.port, bytes.fromhex("E004010012345678"), ATR_15693)
    cards.append(tag)
    await wait_for(lambda: len(r.tokens) == 2)
    assert r.tokens[1] == IdToken("E004010012345678", "ISO15693")
    tag.remove()
    await wait_for(lambda: r.present is None)
    again = VirtualCard(stack.port, bytes.fromhex("04A2B3C4D5E680"), ATR_14443A)
    cards.append(again)
    await wait_for(lambda: len(r.tokens) == 3)
    assert r.faults == []


@pytest.mark.slow
@pytest.mark.timeout(900)  # a fresh machine first installs pcscd, vpcd and pyscard (apt, pip build)
async def test_real_stack_reader_gone_and_back(stack, real_reader):
    from tests.hal.pcsc_stack import VirtualCard

    r, cards = real_reader
    await r.start()
    card = VirtualCard(stack.port, bytes.fromhex("DEADBEEF"), ATR_14443A)
    cards.append(card)
    await wait_for(lambda: r.tokens)
    stack.stop()  # PC/SC service and reader gone
    await wait_for(lambda: r.faults, what="a fault")
    assert r.faults[0].active and r.faults[0].error_code == "ReaderFailure"
    stack.start(with_reader=False)  # service back, reader still missing
    await asyncio.sleep(0.5)
    assert len(r.faults) == 1
    stack.stop()
    stack.start()  # reader back; the card stayed on it and reconnects
    await wait_for(lambda: len(r.faults) == 2, what="the fault cleared")
    assert not r.faults[1].active
    await wait_for(lambda: card.connected.is_set())
    await asyncio.sleep(1.0)
    assert r.tokens == [IdToken("DEADBEEF", "ISO14443")]
    card.remove()
    await wait_for(lambda: r.present is None)
    other = VirtualCard(stack.port, bytes.fromhex("01020304"), ATR_14443A)
    cards.append(other)
    await wait_for(lambda: len(r.tokens) == 2)
    assert r.tokens[1] == IdToken("01020304", "ISO14443")
    assert len(r.faults) == 2
