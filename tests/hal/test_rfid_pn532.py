"""PN532 reader backend against a fake PN532 on a pseudo-terminal (tests/hal/pn532_peer.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hal.board import build_evse, check_device
from hal.rfid.pn532 import KEYS, Pn532Reader, frame, parse_target
from hal.section import read_section
from hal.types import Fault, IdToken, ReaderError
from tests.hal.pn532_peer import Card, FakePn532
from tests.hal.waits import wait_for

UID7 = bytes.fromhex("04A2B3C4D5E680")
UID4 = bytes.fromhex("DEADBEEF")




async def more_polls(fake: FakePn532, n: int = 5) -> None:
    start = fake.polls
    await wait_for(lambda: fake.polls >= start + n, what=f"{n} more polls")


@pytest.fixture
def fake():
    f = FakePn532()
    yield f
    f.close()


@pytest.fixture
async def reader(fake):
    r = Pn532Reader(fake.path, poll_interval_s=0.01, timeout_s=0.2)
    r.tokens: list[IdToken] = []
    r.faults: list[Fault] = []
    r.on_token(r.tokens.append)
    r.on_fault(r.faults.append)
    yield r
    await r.stop()
    assert fake.violations == []
    assert fake.bad_frames == 0


def test_frame_layout():
    # GetFirmwareVersion as printed in the PN532 user manual
    assert frame(b"\x02") == bytes.fromhex("0000FF02FED4022A00")
    # SAMConfiguration normal mode, timeout 50 ms * 0x14, use IRQ
    assert frame(b"\x14\x01\x14\x01") == bytes.fromhex("0000FF05FBD4140114010200")


def test_parse_targets():
    assert parse_target(bytes.fromhex("00"), 0x00) is None
    assert parse_target(bytes.fromhex("01010044000704A2B3C4D5E680"), 0x00) == "04A2B3C4D5E680"
    assert parse_target(bytes.fromhex("0101000408 04 DEADBEEF".replace(" ", "")), 0x00) == "DEADBEEF"
    atqb = bytes.fromhex("50 11223344 00000000 008171".replace(" ", ""))
    assert parse_target(b"\x01\x01" + atqb + b"\x01\x00", 0x03) == "11223344"
    with pytest.raises(ValueError):
        parse_target(bytes.fromhex("0101004400"), 0x00)


async def test_start_wakes_and_configures_the_chip(fake, reader):
    await reader.start()
    assert reader.firmware == (0x32, 0x01, 0x06, 0x07)
    assert fake.wakeups == 1
    assert fake.commands[:3] == [0x14, 0x02, 0x32]
    assert fake.max_retries_passive != 0xFF
    await more_polls(fake, 3)
    assert reader.tokens == [] and reader.faults == []


async def test_card_reported_once_while_it_stays(fake, reader):
    await reader.start()
    fake.put(Card(UID7))
    await wait_for(lambda: reader.tokens, what="a token")
    await more_polls(fake, 20)
    assert reader.tokens == [IdToken("04A2B3C4D5E680", "ISO14443")]


async def test_card_removed_and_presented_again(fake, reader):
    await reader.start()
    fake.put(Card(UID4))
    await wait_for(lambda: len(reader.tokens) == 1)
    fake.remove()
    await more_polls(fake, 3)
    assert len(reader.tokens) == 1
    fake.put(Card(UID4))
    await wait_for(lambda: len(reader.tokens) == 2)
    await more_polls(fake, 5)
    assert reader.tokens == [IdToken("DEADBEEF", "ISO14443")] * 2


async def test_two_different_cards(fake, reader):
    await reader.start()
    fake.put(Card(UID4))
    await wait_for(lambda: len(reader.tokens) == 1)
    fake.put(Card(UID7, sens_res=b"\x00\x44"))  # swapped without a poll in between finding no card
    await wait_for(lambda: len(reader.tokens) == 2)
    await more_polls(fake, 5)
    assert [t.id_token for t in reader.tokens] == ["DEADBEEF", "04A2B3C4D5E680"]


async def test_type_b_card_reported_by_pupi(fake):
    r = Pn532Reader(fake.path, poll_interval_s=0.01, timeout_s=0.2, type_b=True)
    tokens: list[IdToken] = []
    r.on_token(tokens.append)
    await r.start()
    try:
        fake.put(Card(bytes.fromhex("11223344"), kind="B"))
        await wait_for(lambda: tokens)
        await more_polls(fake, 5)
        assert tokens == [IdToken("11223344", "ISO14443")]
    finally:
        await r.stop()
    assert fake.violations == []


async def test_corrupted_checksum_is_retried_without_false_token(fake, reader):
    await reader.start()
    fake.corrupt_responses = 1  # a "no target" answer with a bad DCS
    await more_polls(fake, 5)
    assert fake.nacks == 1 and fake.corrupt_responses == 0
    fake.put(Card(UID7))
    await wait_for(lambda: reader.tokens)
    fake.corrupt_responses = 2  # "card present" answers garbled twice while the card stays
    await more_polls(fake, 8)
    assert fake.nacks == 3
    assert reader.tokens == [IdToken("04A2B3C4D5E680", "ISO14443")]
    assert reader.faults == []


async def test_reader_stops_answering_then_comes_back(fake, reader):
    await reader.start()
    fake.put(Card(UID7))
    await wait_for(lambda: reader.tokens)
    fake.silent = True
    await wait_for(lambda: reader.faults, what="a fault")
    await asyncio.sleep(1.0)  # several failed polls: still one fault
    assert len(reader.faults) == 1
    f = reader.faults[0]
    assert f.error_code == "ReaderFailure" and f.active and fake.path in f.info
    fake.power_cycle()  # the chip comes back asleep and unconfigured
    fake.silent = False
    await wait_for(lambda: len(reader.faults) == 2, what="the fault cleared")
    assert reader.faults[1].error_code == "ReaderFailure" and not reader.faults[1].active
    assert fake.wakeups == 2 and fake.sam_configured and fake.max_retries_passive != 0xFF
    await more_polls(fake, 5)
    assert len(reader.tokens) == 1  # the card stayed on the reader all along: not reported again
    fake.remove()
    await more_polls(fake, 2)
    fake.put(Card(UID4))
    await wait_for(lambda: len(reader.tokens) == 2)
    assert len(reader.faults) == 2


async def test_start_fails_when_nothing_answers(fake):
    fake.silent = True
    r = Pn532Reader(fake.path, timeout_s=0.1)
    with pytest.raises(ReaderError) as e:
        await r.start()
    assert fake.path in str(e.value) and "no PN532 answers" in str(e.value)
    assert e.value.error_code == "ReaderFailure"
    await r.stop()


async def test_start_fails_when_another_chip_answers(fake):
    fake.firmware = bytes([0x33, 0x01, 0x06, 0x07])
    r = Pn532Reader(fake.path, timeout_s=0.1)
    with pytest.raises(ReaderError, match="not a PN532") as e:
        await r.start()
    assert fake.path in str(e.value)
    await r.stop()


async def test_start_fails_on_a_missing_port():
    r = Pn532Reader("/dev/ttyNOPE-pn532", timeout_s=0.1)
    with pytest.raises(ReaderError, match="/dev/ttyNOPE-pn532") as e:
        await r.start()
    assert "cannot open" in str(e.value)
    await r.stop()


async def test_reader_missing_at_start_is_a_fault_and_is_used_once_it_answers(fake):
    """A PN532 that does not answer at start: ReaderFailure at once, and the reader keeps trying,
    so one connected (or repaired) later works without restarting the station."""
    fake.silent = True
    r = Pn532Reader(fake.path, timeout_s=0.1, poll_interval_s=0.02)
    faults, tokens = [], []
    r.on_fault(faults.append)
    r.on_token(tokens.append)
    with pytest.raises(ReaderError):
        await r.start()
    try:
        assert [(f.error_code, f.active) for f in faults] == [("ReaderFailure", True)]
        fake.silent = False
        await wait_for(lambda: len(faults) == 2, what="the fault cleared")
        assert not faults[1].active
        fake.put(Card(UID4))
        await wait_for(lambda: len(tokens) == 1)
    finally:
        await r.stop()


async def test_stop_returns_quickly_during_a_command(fake, reader):
    await reader.start()
    fake.silent = True
    await asyncio.sleep(0.05)  # a poll is now waiting for an answer that will not come
    t = time.monotonic()
    await reader.stop()
    assert time.monotonic() - t < 0.5
    polls = fake.polls
    await asyncio.sleep(0.1)
    assert fake.polls == polls
    fake.silent = False


async def test_stop_returns_quickly_with_a_long_timeout(fake):
    r = Pn532Reader(fake.path, poll_interval_s=0.01, timeout_s=5.0)
    await r.start()
    fake.silent = True
    await asyncio.sleep(0.1)
    t = time.monotonic()
    await r.stop()
    assert time.monotonic() - t < 0.5


def test_keys_defaults_and_problems():
    values, problems = read_section({"kind": "pn532", "port": "/dev/serial0"}, KEYS, "evse 1: reader")
    assert problems == []
    assert values == {"port": "/dev/serial0", "baudrate": 115200, "poll_interval_s": 0.2, "timeout_s": 1.0,
                      "type_b": False}
    assert check_device("reader", {"kind": "pn532"}, "evse 1: reader") == [
        "evse 1: reader.port: missing (required for this kind)"
    ]
    problems = check_device("reader", {"kind": "pn532", "port": "/dev/serial0", "baudrate": 12345}, "r")
    assert len(problems) == 1 and problems[0].startswith("r.baudrate: must be one of") and "115200" in problems[0]
    problems = check_device("reader", {"kind": "pn532", "port": "/dev/serial0", "baudrate": "fast"}, "r")
    assert problems == ["r.baudrate: must be a whole number, got 'fast'"]


async def test_build_through_board(fake):
    hw = build_evse(1, {"reader": {"kind": "pn532", "port": fake.path, "poll_interval_s": 0.02, "timeout_s": 0.2}})
    assert isinstance(hw.reader, Pn532Reader)
    tokens: list[IdToken] = []
    faults: list[Fault] = []
    hw.reader.on_token(tokens.append)
    hw.on_fault(faults.append)
    await hw.start()
    try:
        fake.put(Card(UID7))
        await wait_for(lambda: tokens)
        fake.silent = True
        await wait_for(lambda: faults, what="the reader fault through the EVSE")
        assert faults[0].error_code == "ReaderFailure" and faults[0].active
    finally:
        await hw.close()
    assert tokens == [IdToken("04A2B3C4D5E680", "ISO14443")]


def test_build_through_board_rejects_bad_keys():
    with pytest.raises(ValueError, match="reader.port: missing"):
        build_evse(1, {"reader": {"kind": "pn532"}})
