"""The link under bad input and bad networks (OCPP-J 1.6).

The first part runs the whole station (in process on virtual time, or as a real process with
--station-process): bad frames get the CallError OCPP-J 1.6 asks for (or are dropped where there
is no message id to answer), and the station stays connected and keeps working. A CSMS request is
answered while our own call waits. The station reconnects with back-off after the CSMS goes away,
after a refused handshake and after a Reset. Security profile 1 sends HTTP Basic credentials,
profile 0 none.

The second part builds a Link alone against the ScriptedCsms on a VirtualTimeLoop: reconnect
delays and back-off, supervision (no silent dead link), a new password, and answers that go out
before the socket closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from types import SimpleNamespace

import pytest

from station import link as link_module
from station.api import status_of
from station.link import Link
from station.scheduler import VirtualTimeLoop
from tests.integration.harness import CallErrorReply, ScriptedCsms, start_session


async def raw_call(csms: ScriptedCsms, uid: str, action: str, payload: object) -> list:
    """Send a Call frame exactly as given (no validation on our side); return the station's answer frame."""
    msg = await csms.send_call_raw([2, uid, action, payload], timeout=5)
    assert msg[1] == uid
    return msg


async def still_works(csms: ScriptedCsms) -> None:
    """The same connection still answers a well-formed request promptly."""
    got = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=3)
    assert got["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert csms.connections == 1 and csms.connected.is_set()


async def send_text_for_answer(csms: ScriptedCsms, uid: str, text: str, timeout: float = 5) -> list:
    """Send ``text`` as it is (not JSON we could build) and wait for the station's answer to ``uid``."""
    fut = asyncio.get_running_loop().create_future()
    csms._pending[uid] = fut
    await csms.send_text(text)
    return await asyncio.wait_for(fut, timeout)


def reconnect_delays(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"reconnecting in ([0-9.]+) s", log)]


# -- frames that are not OCPP-J at all --------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "this is not json",
        '{"not": "an array"}',
        "[]",
        "[2]",
        '[2, 17, "Heartbeat", {}]',  # the unique id must be a string: nothing to answer to
        "null",
        '"[2, \\"x\\", \\"Heartbeat\\", {}]"',
    ],
)
async def test_frame_without_message_id_is_dropped_and_link_stays(csms, booted, text):
    """A frame that is not a JSON array with a string message id cannot be answered (OCPP-J 1.6 has
    no RpcFrameworkError): the station drops it, sends nothing, keeps the connection and works on."""
    await booted()
    errors = len(csms.errors_from_station)
    await csms.send_text(text)
    await still_works(csms)
    assert len(csms.errors_from_station) == errors, csms.errors_from_station[errors:]


@pytest.mark.parametrize("text", ['[7, "mt-7", "Heartbeat", {}]', '[2.0, "mt-7", "ClearCache", {}]',
                                  '["2", "mt-7", "ClearCache", {}]', '[true, "mt-7", "ClearCache", {}]'])
async def test_unknown_message_type_is_ignored(csms, booted, text):
    """OCPP-J 1.6 4.1.3: a message type number other than 2, 3, 4 (also 2.0, "2", true) is ignored:
    no CallError (the old station answered FormationViolation, and took 2.0 for a Call)."""
    sp = await booted()
    await csms.send_text(text)
    await still_works(csms)
    assert not csms.errors_from_station
    assert "ignored" in sp.log() and "unknown message type" in sp.log()


async def test_deeply_nested_frame_does_not_end_the_link(csms, booted):
    """A 2 KB frame nested 1,000 deep raised RecursionError in the link's parser and ended the
    connection; now: FormationViolation for its id, same connection, the station works on."""
    sp = await booted()
    deep = '[2, "deep-1", "DataTransfer", {"vendorId": "x", "data": ' + "[" * 1000 + "]" * 1000 + "}]"
    err = await send_text_for_answer(csms, "deep-1", deep)
    assert err[:3] == [4, "deep-1", "FormationViolation"]
    await csms.send_text("[" * 100_000)  # no message id to answer to: dropped
    await still_works(csms)
    await start_session(csms, sp)
    assert csms.connections == 1


@pytest.mark.parametrize("frame,expect", [
    ([2, "x" * 37, "ClearCache", {}], None),  # message id over 36 characters: invalid, not echoed
    ([2, "p-1", "../../v201/schemas/ResetRequest", {"type": "Immediate"}], "NotImplemented"),
    ([2, "p-2", "A" * 1000, {}], "NotImplemented"),
    ([2, "p-3", "ReserveNow", {"connectorId": 1, "expiryDate": "yesterday", "idTag": "T", "reservationId": 1}],
     "TypeConstraintViolation"),
])
async def test_hostile_frames_get_the_right_answer_or_none(csms, booted, frame, expect):
    await booted()
    if expect is None:
        with pytest.raises(TimeoutError):  # no answer at all, not even a CallResult echoing the id
            await send_text_for_answer(csms, frame[1], json.dumps(frame), timeout=2)
    else:
        err = await csms.send_call_raw(frame, timeout=5)
        assert err[:3] == [4, frame[1], expect] and len(err[3]) <= 255
    await still_works(csms)
    if expect is None:
        assert not csms.errors_from_station


async def test_binary_frame_is_not_taken_for_a_call(csms, booted):
    """OCPP-J sends text messages: a binary one holding a Call is dropped, nothing is reset."""
    sp = await booted()
    assert csms.ws is not None
    await csms.ws.send(json.dumps([2, "bin-1", "Reset", {"type": "Hard"}]).encode())
    await still_works(csms)
    assert not csms.errors_from_station and sp.running
    assert "binary websocket message" in sp.log()


@pytest.mark.parametrize("frame", [[2, "c-short", "Heartbeat"], [2, "c-list", "Reset", ["Hard"]], [2, "c-num", 5, {}]])
async def test_malformed_call_gets_formation_violation(csms, booted, frame):
    """A Call that is not [2, id, action, {payload}] gets FormationViolation for its id."""
    await booted()
    err = await csms.send_call_raw(frame, timeout=5)
    assert err[0] == 4 and err[1] == frame[1] and err[2] == "FormationViolation"
    await still_works(csms)


async def test_responses_to_no_call_are_ignored(csms, booted):
    """A CallResult or CallError whose id matches no call of ours is dropped silently."""
    await booted()
    await csms.send_text(json.dumps([3, "never-asked", {"currentTime": "2030-01-01T00:00:00Z"}]))
    await csms.send_text(json.dumps([4, "never-asked-2", "GenericError", "", {}]))
    await still_works(csms)
    assert not csms.errors_from_station


# -- calls that are well-formed frames but wrong requests -------------------------------------
async def test_unknown_action_gets_not_implemented(csms, booted):
    """An action OCPP 1.6 does not define -> CallError NotImplemented."""
    await booted()
    err = await raw_call(csms, "u-1", "FlyToTheMoon", {})
    assert err[0] == 4 and err[2] == "NotImplemented"
    await still_works(csms)


UNSUPPORTED_PROFILE_ACTIONS = {
    "Reservation": ("CancelReservation", {"reservationId": 1}),
    "SmartCharging": ("ClearChargingProfile", {}),
    "FirmwareManagement": ("GetDiagnostics", {"location": "ftp://example.com/"}),
}


async def test_action_of_unsupported_profile_gets_not_supported(csms, booted):
    """An OCPP 1.6 action of a feature profile the station does not list -> CallError NotSupported."""
    await booted()
    profiles = (await csms.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]}))["configurationKey"][0]["value"]
    missing = [p for p in UNSUPPORTED_PROFILE_ACTIONS if p not in profiles.split(",")]
    if not missing:
        pytest.skip("the station supports every profile with a CallError-only probe")
    action, payload = UNSUPPORTED_PROFILE_ACTIONS[missing[0]]
    err = await raw_call(csms, "ns-1", action, payload)
    assert err[0] == 4 and err[2] == "NotSupported", err
    await still_works(csms)


@pytest.mark.parametrize(
    "action,payload,code",
    [
        ("ChangeAvailability", {"type": "Inoperative"}, "ProtocolError"),  # required field missing
        ("ChangeAvailability", {"connectorId": "one", "type": "Inoperative"}, "TypeConstraintViolation"),
        ("RemoteStartTransaction", {"idTag": "X" * 21}, "TypeConstraintViolation"),  # CiString20Type
        ("ChangeAvailability", {"connectorId": 1, "type": "Sideways"}, "PropertyConstraintViolation"),
        ("Reset", {"type": "Gentle"}, "PropertyConstraintViolation"),
        ("ChangeAvailability", {"connectorId": 1, "type": "Inoperative", "extra": 1}, "FormationViolation"),
        ("UnlockConnector", {"connectorId": 1.5}, "TypeConstraintViolation"),
    ],
)
async def test_schema_invalid_payload_gets_right_call_error(csms, booted, action, payload, code):
    """A payload that breaks the 1.6 schema gets the CallError OCPP-J 1.6 names, and is not acted on."""
    sp = await booted()
    err = await raw_call(csms, f"bad-{action}", action, payload)
    assert err[0] == 4 and err[2] == code, err
    assert err[3] and isinstance(err[4], dict)
    await still_works(csms)
    await csms.no_call("StatusNotification", 0.5)
    assert (await sp.status())["evses"][0]["connectors"][0]["status"] == "Available"


@pytest.mark.parametrize(
    "action,payload,answer",
    [
        ("UnlockConnector", {"connectorId": 9}, {"status": "NotSupported"}),
        ("ChangeAvailability", {"connectorId": 9, "type": "Inoperative"}, {"status": "Rejected"}),
        ("RemoteStartTransaction", {"idTag": "A", "connectorId": 9}, {"status": "Rejected"}),
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 9}, {"status": "Rejected"}),
    ],
)
async def test_connector_that_does_not_exist(csms, booted, action, payload, answer):
    """Requests for connector 9 on a one-connector station are answered (not a CallError) with the
    status 1.6 gives for an unknown connector, and nothing happens to connector 1."""
    await booted()
    assert await csms.call(action, payload) == answer
    await csms.no_call("StatusNotification", 0.5)
    await still_works(csms)


async def test_station_keeps_working_after_a_burst_of_bad_input(csms, booted):
    """Every kind of bad input in a row on one connection, then a whole charging session on it."""
    sp = await booted()
    for text in ("not json", "{}", "[1]", json.dumps([3, "nobody", {}]), json.dumps([9, "x9", "A", {}])):
        await csms.send_text(text)
    for i, (action, payload) in enumerate([("FlyToTheMoon", {}), ("ChangeAvailability", {"type": "Inoperative"}),
                                           ("Reset", {"type": "Gentle"}), ("GetConfiguration", {"key": "Heartbeat"})]):
        with pytest.raises(CallErrorReply):
            msg = await raw_call(csms, f"burst-{i}", action, payload)
            raise CallErrorReply(msg[2], msg[3]) if msg[0] == 4 else AssertionError(f"accepted: {msg}")
    assert csms.connections == 1
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    assert (await csms.expect("StopTransaction"))["transactionId"] == 1
    assert csms.connections == 1


# -- requests while our own call waits ----------------------------------------------------------
async def test_csms_request_answered_while_own_heartbeat_waits(csms, booted):
    """Our Heartbeat is unanswered (the CSMS keeps it waiting); CSMS requests are still answered at once."""
    await booted()
    csms.silent.add("Heartbeat")
    assert (await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
    await csms.expect("Heartbeat")
    loop = asyncio.get_running_loop()
    for _ in range(3):
        t0 = loop.time()
        await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=3)
        assert loop.time() - t0 < 1.0
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}))["status"] == "Accepted"


async def test_csms_request_answered_while_own_status_notification_waits(csms, booted):
    """Our StatusNotification is unanswered; a RemoteStartTransaction is still answered promptly."""
    sp = await booted()
    csms.silent.add("StatusNotification")
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    t0 = asyncio.get_running_loop().time()
    r = await csms.call("RemoteStartTransaction", {"idTag": "R1", "connectorId": 1}, timeout=3)
    assert r["status"] == "Accepted" and asyncio.get_running_loop().time() - t0 < 1.0


async def test_wrong_id_response_does_not_complete_our_call(csms, booted):
    """While our Heartbeat waits, a CallResult with another id is ignored; the one with the right id
    completes it, and the next call goes out right away."""
    sp = await booted()
    csms.silent.add("Heartbeat")
    await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    await csms.expect("Heartbeat")
    hb = [r for r in csms.received if r.action == "Heartbeat"][-1]
    await csms.send_text(json.dumps([3, hb.unique_id + "-other", {"currentTime": "2030-01-01T00:00:00Z"}]))
    await sp.plug()  # its StatusNotification must wait behind the Heartbeat
    await csms.no_call("StatusNotification", 0.7)
    await csms.send_text(json.dumps([3, hb.unique_id, {"currentTime": "2030-01-01T00:00:00Z"}]))
    await csms.expect_status(1, "Preparing", timeout=2)


# -- reconnecting -------------------------------------------------------------------------------
async def test_reconnect_with_backoff_after_csms_goes_away(csms, booted):
    """The CSMS server goes down for a while: the station retries after 1-3 s, then with delays
    twice as long each time (back-off), comes back by itself when the server is up again on the
    same address, without a new BootNotification, and works as before."""
    sp = await booted()
    await csms.close()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    for _ in range(300):  # three waits logged: 1-3 s, then 2-6 s, 4-12 s
        if len(delays := reconnect_delays(sp.log())) >= 3:
            break
        await asyncio.sleep(0.1)
    assert len(delays) >= 3, delays
    assert 1.0 <= delays[0] <= 3.0, delays
    assert all(abs(b - 2 * a) <= 0.21 for a, b in zip(delays, delays[1:], strict=False)), delays
    status = await sp.status()
    assert not status["connected"] and status["link"] in ("waiting", "connecting")
    assert "Connect call failed" in status["last_error"] or "refused" in status["last_error"].lower(), status
    csms.mark()
    await csms.start(port=csms.port)
    await asyncio.wait_for(csms.connected.wait(), 20)
    assert csms.connections == 2
    await still_works_after_reconnect(csms)
    await start_session(csms, sp)
    assert len(csms.calls("BootNotification")) == 1


async def still_works_after_reconnect(csms: ScriptedCsms) -> None:
    got = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=3)
    assert got["configurationKey"]


async def test_reconnect_after_connection_drop(csms, booted):
    """The CSMS closes the socket: the station reconnects within about a second, no reboot."""
    sp = await booted()
    await csms.drop_connection()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.wait_for(csms.connected.wait(), 5)
    await still_works_after_reconnect(csms)
    await start_session(csms, sp)
    assert len(csms.calls("BootNotification")) == 1 and csms.connections == 2


async def test_reconnect_after_handshake_rejection(csms, make_station):
    """The CSMS answers the first two handshakes with HTTP 401: the station keeps retrying, each
    time waiting longer, and gets in on the third; then it boots normally."""
    csms.reject_handshake = 2
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=30)
    assert csms.connections == 1  # the rejected handshakes never became sessions
    assert len(csms.handshake_times) == 3
    gaps = [b - a for a, b in zip(csms.handshake_times, csms.handshake_times[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= gaps[0] * 0.95, gaps
    assert sp.log().count("HTTP 401") >= 2


async def test_handshake_rejected_after_csms_restart(csms, booted):
    """After an outage the CSMS first refuses the station (401), then lets it in: back to normal
    without a BootNotification, and a transaction message queued meanwhile is delivered."""
    sp = await booted()
    await start_session(csms, sp)
    await csms.close()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await sp.swipe("TAG1")
    await asyncio.sleep(0.5)
    csms.reject_handshake = 1
    await csms.start(port=csms.port)
    stop = await csms.expect("StopTransaction", timeout=20)
    assert stop["transactionId"] == 1
    assert csms.reject_handshake == 0 and csms.connections == 2
    assert len(csms.calls("BootNotification")) == 1


# -- security profiles --------------------------------------------------------------------------
async def test_security_profile_1_sends_basic_auth(csms, booted, tmp_path):
    """Security profile 1: every handshake (also after a reconnect) carries HTTP Basic auth with
    the station id and AuthorizationKey; the key itself is write-only for GetConfiguration."""
    cfg = tmp_path / "sp1.toml"
    cfg.write_text("[station]\nsecurity_profile = 1\n\n[[evse]]\nid = 1\n")
    key = "0123456789abcdef0123"
    await booted(config=str(cfg), ocpp_config={"AuthorizationKey": key})
    expected = "Basic " + base64.b64encode(f"CS001:{key}".encode()).decode()
    assert csms.auth_headers == [expected]
    assert csms.paths == ["/ocpp/CS001"]
    got = await csms.call("GetConfiguration", {"key": ["AuthorizationKey"]})
    assert got["unknownKey"] == ["AuthorizationKey"] and not got["configurationKey"]
    assert key not in json.dumps(await csms.call("GetConfiguration", {}))
    await csms.drop_connection()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.wait_for(csms.connected.wait(), 5)
    assert csms.auth_headers == [expected, expected]


async def test_security_profile_0_sends_no_credentials(csms, booted):
    """Security profile 0 (the default): no Authorization header, even with an AuthorizationKey set."""
    await booted(ocpp_config={"AuthorizationKey": "0123456789abcdef0123"})
    assert csms.auth_headers == [None]
    assert csms.subprotocols == ["ocpp1.6"]


async def test_reconnect_after_reset_waits_a_moment(csms, booted):
    """After a Reset the rebuilt station waits 1-3 s (randomized) before it connects again: two
    independent CSMSs failed on a reconnect 13-46 ms after the close."""
    await booted()
    assert (await csms.call("Reset", {"type": "Hard"}))["status"] == "Accepted"
    await asyncio.wait_for(csms.disconnected.wait(), 10)
    closed_at = asyncio.get_running_loop().time()
    handshakes = len(csms.handshake_times)
    await csms.expect("BootNotification", timeout=15)
    gap = csms.handshake_times[handshakes] - closed_at
    assert 1.0 <= gap <= 3.5, gap


# -- the link in process, on virtual time ---------------------------------------------------------
# These build a Link against the ScriptedCsms (a real websockets server on 127.0.0.1) on a
# VirtualTimeLoop: a minute of back-off costs milliseconds. Peer is the station side: it boots on
# its first connection (and calls Link.registered() when Accepted), answers the CSMS's calls with
# ``answers``, and sends a Heartbeat on every later connection.
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def run_virtual(main):  # noqa: ANN001, ANN201 - a coroutine function and its result
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 3600))
    finally:
        loop.close()


class Peer:
    def __init__(self, url: str, on_close=None, **kw) -> None:  # noqa: ANN001
        self.log = logging.getLogger("test.link")
        self.answers: dict = {}
        self.opened = 0
        self.boots: list[dict] = []
        self.link = Link(url=url + "/CS1", version="1.6", handler=self.handle, on_open=self.on_open,
                         on_close=on_close or (lambda: None), log=self.log, **kw)
        self.task: asyncio.Task | None = None

    def start(self) -> Peer:
        self.task = asyncio.ensure_future(self.link.run())
        return self

    async def on_open(self) -> None:
        self.opened += 1
        if self.boots and self.boots[-1]["status"] == "Accepted":
            await self.link.call("Heartbeat", {})
            return
        self.boots.append(await self.link.call("BootNotification", BOOT))
        if self.boots[-1]["status"] == "Accepted":
            self.link.registered()

    async def handle(self, action: str, payload: dict):  # noqa: ANN201
        answer = self.answers.get(action, {})
        return await answer(payload) if callable(answer) else answer

    async def stop(self) -> None:
        await self.link.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_first_reconnect_after_a_dropped_link_waits_1_to_3_s_randomized():
    """The CSMS drops the link five times: each time the station waits 1-3 s before it comes
    back (not the same wait every time), and the registered station's back-off starts over."""

    async def main() -> list[float]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url).start()
        await csms.expect("BootNotification")
        waits = []
        for _ in range(5):
            await csms.drop_connection()
            await asyncio.wait_for(csms.disconnected.wait(), 5)
            dropped, n = asyncio.get_running_loop().time(), len(csms.handshake_times)
            await csms.expect("Heartbeat", timeout=10)
            waits.append(csms.handshake_times[n] - dropped)
        await peer.stop()
        await csms.close()
        return waits

    waits = run_virtual(main)
    assert all(1.0 <= w <= 3.05 for w in waits), waits
    assert len({round(w, 3) for w in waits}) > 1, waits


def test_a_new_link_right_after_a_close_waits_before_connecting():
    """A Reset builds a new link (``reconnecting=True``, as the runtime does from its second
    generation on): it waits 1-3 s after the old one closed. A first link connects at once."""

    async def main() -> tuple[float, float]:
        csms = ScriptedCsms()
        url = await csms.start()
        started = asyncio.get_running_loop().time()
        first = Peer(url).start()
        await csms.expect("BootNotification")
        at_once = csms.handshake_times[0] - started
        await first.stop()
        closed = asyncio.get_running_loop().time()
        second = Peer(url, reconnecting=True).start()
        await csms.expect("BootNotification")
        await second.stop()
        await csms.close()
        return at_once, csms.handshake_times[1] - closed

    at_once, gap = run_virtual(main)
    assert at_once < 0.1, at_once
    assert 1.0 <= gap <= 3.05, gap


class AcceptAndClose(ScriptedCsms):
    """A CSMS that accepts the websocket and closes it at once, before any OCPP message."""

    async def _session(self, ws) -> None:  # noqa: ANN001
        self.connections += 1
        await ws.close()


def test_csms_that_accepts_and_closes_at_once_sees_growing_backoff(caplog):
    """A handshake alone does not reset the back-off (only BootNotification Accepted does): the
    waits double from 1-3 s up to backoff_max, instead of one attempt a second."""
    caplog.set_level(logging.INFO, "test.link")

    async def main() -> tuple[list[float], str]:
        csms = AcceptAndClose()
        url = await csms.start()
        peer = Peer(url).start()
        await asyncio.sleep(400)
        await peer.stop()
        await csms.close()
        return csms.handshake_times, peer.link.last_error

    times, last_error = run_virtual(main)
    g = gaps(times)
    assert 1.0 <= g[0] <= 3.05 and len(g) >= 6, g
    for a, b in zip(g, g[1:], strict=False):
        assert b == pytest.approx(min(60.0, 2 * a), abs=0.05), g
    assert max(g) == pytest.approx(60.0, abs=0.05)
    assert len(times) <= 12  # not one attempt a second: 400 s with back-off is about a dozen
    assert "CSMS closed the connection" in last_error
    assert any(r.levelno == logging.WARNING and "CSMS closed the connection" in r.getMessage() for r in caplog.records)


def test_backoff_starts_over_after_boot_accepted(caplog):
    """The CSMS is down long enough for the back-off to grow; it comes back and Accepts the boot;
    the next drop is followed by a wait of 1-3 s again."""
    caplog.set_level(logging.INFO, "test.link")

    async def main() -> list[float]:
        csms = ScriptedCsms()
        url = await csms.start()
        port = csms.port
        await csms.close()
        peer = Peer(url).start()
        await asyncio.sleep(100)  # attempts at 0, ~2, ~6, ~14, ~30, ~62 s: waits grow to 32-60 s
        grown = reconnect_delays(caplog.text)[-1]
        await csms.start(port=port)
        await csms.expect("BootNotification", timeout=120)
        await csms.drop_connection()
        await asyncio.wait_for(csms.disconnected.wait(), 5)
        dropped, n = asyncio.get_running_loop().time(), len(csms.handshake_times)
        await csms.expect("Heartbeat", timeout=10)
        await peer.stop()
        await csms.close()
        return [grown, csms.handshake_times[n] - dropped]

    grown, after = run_virtual(main)
    assert grown >= 16, grown
    assert 1.0 <= after <= 3.05, after


def test_refused_handshakes_are_logged_with_the_cause_and_kept_in_last_error(caplog):
    caplog.set_level(logging.INFO, "test.link")

    async def main() -> tuple[str, str, int]:
        csms = ScriptedCsms()
        url = await csms.start()
        csms.reject_handshake = 3
        peer = Peer(url).start()
        await asyncio.sleep(5)
        during = (peer.link.last_error, peer.link.state)
        await csms.expect("BootNotification", timeout=60)
        await peer.stop()
        await csms.close()
        return *during, len(csms.handshake_times)

    last_error, state, handshakes = run_virtual(main)
    assert "HTTP 401" in last_error and "AuthorizationKey" in last_error and state == "waiting"
    assert handshakes == 4
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "HTTP 401" in r.getMessage()]
    assert len(warned) == 3


def test_unexpected_exception_while_connecting_is_logged_and_the_link_goes_on(monkeypatch, caplog):
    """A bug of ours (or of a library) inside run(): logged at ERROR with its cause, kept in
    last_error, and the link tries again after the back-off instead of dying silently."""
    calls = []
    real_connect = link_module.connect

    def flaky_connect(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom in connect")
        return real_connect(*args, **kw)

    monkeypatch.setattr(link_module, "connect", flaky_connect)
    caplog.set_level(logging.INFO, "test.link")

    async def main() -> tuple[str, float, int]:
        csms = ScriptedCsms()
        url = await csms.start()
        t0 = asyncio.get_running_loop().time()
        peer = Peer(url).start()
        await asyncio.sleep(0.5)
        error = peer.link.last_error
        await csms.expect("BootNotification", timeout=10)
        await peer.stop()
        await csms.close()
        return error, csms.handshake_times[0] - t0, csms.connections

    error, first_handshake, connections = run_virtual(main)
    assert "RuntimeError" in error and "boom in connect" in error
    assert connections == 1 and 1.0 <= first_handshake <= 3.05
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "boom in connect" in r.getMessage()]
    assert errors and errors[0].exc_info is not None


def test_failing_on_close_callback_does_not_kill_the_link(caplog):
    """on_close raises (a bug in the adapter): the error is logged and the link reconnects."""
    caplog.set_level(logging.INFO, "test.link")

    def on_close() -> None:
        raise ValueError("adapter bug")

    async def main() -> tuple[int, str]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url, on_close=on_close).start()
        await csms.expect("BootNotification")
        await csms.drop_connection()
        await csms.expect("Heartbeat", timeout=10)
        await peer.stop()
        await csms.close()
        return csms.connections, peer.link.last_error

    connections, last_error = run_virtual(main)
    assert connections == 2
    assert any(r.levelno == logging.ERROR and "adapter bug" in r.getMessage() for r in caplog.records)


def test_set_basic_auth_and_reconnect_after_the_answer_is_sent():
    """ChangeConfiguration AuthorizationKey: the answer goes out, a slower answer to another
    request being made goes out too, then the link closes and comes back with the new password."""

    async def main() -> tuple[dict, dict, list, int]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url, basic_auth=("CS1", "old-password")).start()
        await csms.expect("BootNotification")

        async def slow_data_transfer(payload: dict) -> dict:
            await asyncio.sleep(0.5)
            return {"status": "Accepted"}

        async def change(payload: dict):  # noqa: ANN202
            async def after() -> None:
                peer.link.set_basic_auth(("CS1", payload["value"]))
                peer.link.reconnect("AuthorizationKey changed")

            return {"status": "Accepted"}, after

        peer.answers = {"DataTransfer": slow_data_transfer, "ChangeConfiguration": change}
        slow = asyncio.ensure_future(csms.call("DataTransfer", {"vendorId": "x"}, timeout=5))
        await asyncio.sleep(0.1)
        changed = await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": "new-password"})
        answered = await slow
        await asyncio.wait_for(csms.disconnected.wait(), 5)
        await csms.expect("Heartbeat", timeout=10)
        await peer.stop()
        await csms.close()
        return changed, answered, csms.auth_headers, len(csms.calls("BootNotification"))

    changed, answered, headers, boots = run_virtual(main)
    assert changed == {"status": "Accepted"} and answered == {"status": "Accepted"}
    token = lambda pw: "Basic " + base64.b64encode(f"CS1:{pw}".encode()).decode()  # noqa: E731
    assert headers == [token("old-password"), token("new-password")]
    assert boots == 1


@pytest.mark.parametrize("cancel_run_first", [False, True])
def test_close_sends_the_answers_being_made_first(cancel_run_first):
    """Hard reset: Reset is answered, and a request whose answer is still being made when the
    station closes the link (here a slow DataTransfer) gets its answer before the socket closes.
    ``cancel_run_first``: the order the runtime uses (cancel run(), then close())."""

    async def main() -> tuple[dict, dict]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url).start()
        await csms.expect("BootNotification")
        closing: list[asyncio.Task] = []

        async def slow_data_transfer(payload: dict) -> dict:
            await asyncio.sleep(0.5)
            return {"status": "Accepted", "data": "late"}

        async def reset(payload: dict):  # noqa: ANN202
            async def after() -> None:
                if cancel_run_first and peer.task is not None:
                    peer.task.cancel()
                closing.append(asyncio.ensure_future(peer.link.close()))

            return {"status": "Accepted"}, after

        peer.answers = {"DataTransfer": slow_data_transfer, "Reset": reset}
        slow = asyncio.ensure_future(csms.call("DataTransfer", {"vendorId": "x"}, timeout=5))
        await asyncio.sleep(0.1)
        reset_answer = await csms.call("Reset", {"type": "Hard"})
        late = await slow
        await asyncio.wait_for(csms.disconnected.wait(), 5)
        await asyncio.gather(*closing)
        await peer.stop()
        await csms.close()
        return reset_answer, late

    reset_answer, late = run_virtual(main)
    assert reset_answer == {"status": "Accepted"}
    assert late == {"status": "Accepted", "data": "late"}


def test_status_shows_link_state_and_last_error():
    """GET /api/status carries the link's state and its last error."""
    link = Link(url="ws://127.0.0.1:1/x", version="1.6", handler=None, on_open=None, on_close=None,  # type: ignore[arg-type]
                log=logging.getLogger("test.link"))
    link.last_error, link.state = "CSMS refused the websocket handshake with HTTP 401", "waiting"
    rt = SimpleNamespace(cfg=SimpleNamespace(id="CS1", ocpp="1.6"), station=None,
                         adapter=SimpleNamespace(link=link, registration=None), store=SimpleNamespace(outbox_len=lambda: 0))
    status = status_of(rt)
    assert status["link"] == "waiting" and status["last_error"] == link.last_error and status["connected"] is False


# -- issue 8: answers, bounds, URLs, logs ---------------------------------------------------------
def test_schema_invalid_answer_to_our_call_raises_a_call_error():
    """The CSMS's CallResult is validated: transactionId "abc", null or 2^63, an idTagInfo that is
    no object, an interval "abc" or a currentTime "yesterday" raise InvalidAnswer (a
    CallErrorReceived naming the violation), so the caller keeps its message; a valid answer
    afterwards is returned as before."""
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2030-01-01T00:00:00Z"}
    bad = [
        ("StartTransaction", start, {"transactionId": "abc", "idTagInfo": {"status": "Accepted"}}),
        ("StartTransaction", start, {"transactionId": None, "idTagInfo": {"status": "Accepted"}}),
        ("StartTransaction", start, {"transactionId": 2**63, "idTagInfo": {"status": "Accepted"}}),
        ("StartTransaction", start, {"transactionId": 5, "idTagInfo": "Accepted"}),
        ("BootNotification", BOOT, {"status": "Accepted", "currentTime": "2030-01-01T00:00:00Z", "interval": "abc"}),
        ("Heartbeat", {}, {"currentTime": "yesterday"}),
        ("Authorize", {"idTag": "T"}, {"idTagInfo": {"status": "Accepted", "expiryDate": "soon"}}),
    ]

    async def main() -> tuple[list, dict]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url).start()
        await csms.expect("BootNotification")
        got = []
        for action, payload, answer in bad:
            csms.responders[action] = lambda p, a=answer: a
            try:
                await peer.link.call(action, payload)
                got.append(None)
            except link_module.CallErrorReceived as e:
                got.append((type(e).__name__, e.code, e.description))
        csms.responders.clear()
        good = await peer.link.call("StartTransaction", start)
        await peer.stop()
        await csms.close()
        return got, good

    got, good = run_virtual(main)
    for (action, _, _), outcome in zip(bad, got, strict=True):
        assert outcome is not None, f"{action}: a schema-invalid answer was accepted"
        assert outcome[0] == "InvalidAnswer" and outcome[1] in ("TypeConstraintViolation", "PropertyConstraintViolation")
        assert f"CSMS's {action} response breaks the schema" in outcome[2]
    assert isinstance(good["transactionId"], int)


def test_csms_calls_handled_at_once_are_bounded_and_all_answered_in_order():
    """A CSMS floods 200 calls: every call used to become its own task at once (42 -> 417 MB when
    the answers are not read). Now at most MAX_CSMS_CALLS are handled at once; the link reads the
    rest only as answers go out, and every call is answered."""

    async def main() -> tuple[int, list[list], str]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url).start()
        await csms.expect("BootNotification")
        release = asyncio.Event()
        busy = peak = 0

        async def slow(payload: dict) -> dict:
            nonlocal busy, peak
            busy += 1
            peak = max(peak, busy)
            await release.wait()
            busy -= 1
            return {"status": "Accepted", "data": payload["messageId"]}

        peer.answers["DataTransfer"] = slow
        calls = [asyncio.ensure_future(csms.send_call_raw([2, f"f{i}", "DataTransfer", {"vendorId": "x", "messageId": str(i)}],
                                                          timeout=60)) for i in range(200)]
        await asyncio.sleep(5)
        peak_before = peak
        release.set()
        answers = await asyncio.gather(*calls)
        await peer.stop()
        await csms.close()
        return peak_before, answers, "\n".join(r.getMessage() for r in caplog_records)

    caplog_records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = caplog_records.append  # type: ignore[method-assign]
    logging.getLogger("test.link").addHandler(handler)
    try:
        peak, answers, log = run_virtual(main)
    finally:
        logging.getLogger("test.link").removeHandler(handler)
    assert peak == link_module.MAX_CSMS_CALLS
    assert [a[2]["data"] for a in answers] == [str(i) for i in range(200)]
    assert "reading paused" in log


def test_after_tasks_are_bounded(caplog):
    """40 TriggerMessages whose triggered message cannot go out (our call waits): at most
    MAX_AFTER_TASKS wait, the rest are not sent again, said in the log; all 40 are answered."""
    caplog.set_level(logging.INFO, "test.link")

    async def main() -> tuple[int, list]:
        csms = ScriptedCsms()
        url = await csms.start()
        peer = Peer(url).start()
        await csms.expect("BootNotification")
        started = 0
        never = asyncio.Event()

        async def trigger(payload: dict):  # noqa: ANN202
            async def after() -> None:
                nonlocal started
                started += 1
                await never.wait()

            return {"status": "Accepted"}, after

        peer.answers["TriggerMessage"] = trigger
        answers = [await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"}) for _ in range(40)]
        await peer.stop()
        await csms.close()
        return started, answers

    started, answers = run_virtual(main)
    assert started == link_module.MAX_AFTER_TASKS
    assert answers == [{"status": "Accepted"}] * 40
    assert "triggered messages are waiting" in caplog.text


@pytest.mark.parametrize("url", ["ws://127.0.0.1:99999/x", "ws://[::1/x", "http://127.0.0.1:1/x", "ws://:80/x"])
def test_invalid_url_is_a_clear_error_and_the_link_task_lives_on(url, caplog):
    """``ws://host:99999`` made the link log a traceback per attempt (in the field: a dead link);
    now each attempt logs one ERROR line naming the URL (no traceback), last_error says it, the
    attempts follow the back-off and the task never ends."""
    caplog.set_level(logging.INFO, "test.link")

    async def main() -> tuple[bool, str, str]:
        link = Link(url=url, version="1.6", handler=None, on_open=None, on_close=lambda: None,  # type: ignore[arg-type]
                    log=logging.getLogger("test.link"))
        task = asyncio.ensure_future(link.run())
        await asyncio.sleep(100)
        alive = not task.done()
        await link.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return alive, link.last_error, link.state

    alive, last_error, _ = run_virtual(main)
    assert alive
    assert last_error.startswith("invalid CSMS URL") and url in last_error
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert 3 <= len(errors) <= 10 and all(r.exc_info is None for r in errors)
    assert all("invalid CSMS URL" in r.getMessage() for r in errors)


async def test_authorization_key_is_masked_in_the_frame_log(csms, booted):
    """Every frame carrying a new AuthorizationKey was logged in full at DEBUG: now its value is ***."""
    sp = await booted()
    key = "f00dfeedcafe0123beef"
    assert (await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": key}))["status"] == "Accepted"
    await csms.call("ChangeConfiguration", {"key": "authorizationkey", "value": key + "2"})
    await still_works_after_reconnect(csms)
    log = sp.log()
    assert key not in log
    assert '"value":"***"' in log or '"value": "***"' in log


async def test_csms_text_cannot_forge_log_lines(csms, booted):
    """Newlines in what the CSMS sends (JSON whitespace, an action name, a CallError description,
    a close reason) are escaped in the log: every log line is one line of the station's own."""
    sp = await booted()
    await csms.send_text('[2,\n"f1",\n"Reset\\nFORGED INFO station: a",\n{}]')
    await csms.send_text('[3, "nobody\\nFORGED INFO station: b", {}]')
    await csms.send_text('[9,\r\n"FORGED INFO station: c"]')
    csms.responders["Heartbeat"] = lambda p: CallErrorReply("GenericError", "bad\nFORGED INFO station: d")
    await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    await csms.expect("Heartbeat")
    await still_works(csms)
    lines = sp.log().splitlines()
    assert not [line for line in lines if line.startswith("FORGED") or line.startswith('"FORGED')], lines[-20:]
    assert sum("FORGED" in line for line in lines) >= 4


async def test_a_stream_of_bad_frames_makes_a_bounded_number_of_warnings(csms, booted):
    """500 bad frames in a few seconds made 500 WARNING lines (a CSMS could fill the disk): now at
    most BAD_FRAME_LOG_BURST a minute; the next minute's first line counts the ones held back."""
    sp = await booted()
    for i in range(500):
        await csms.send_text("not json" if i % 2 else json.dumps([3, f"nobody-{i}", {}]))
    await still_works(csms)
    warned = [line for line in sp.log().splitlines() if " WARNING " in line and ("bad frame" in line or "no call of ours" in line)]
    assert 1 <= len(warned) <= link_module.BAD_FRAME_LOG_BURST, len(warned)
    await asyncio.sleep(61)
    await csms.send_text("not json")
    await still_works(csms)
    last = [line for line in sp.log().splitlines() if " WARNING " in line and "bad frame" in line][-1]
    assert "more bad frames were logged at DEBUG only" in last


async def test_watchdog_notices_a_link_task_that_ended(csms, booted):
    """The link is supervised and never ends by itself; if its task ends anyway (a bug), the
    runtime says so and `station run` stops petting the systemd watchdog, so systemd restarts the
    station instead of leaving it off line for ever (issue 8)."""
    sp = await booted()
    rt = sp.rt
    assert rt.health_problem() is None
    task = rt._link_task
    task.cancel()
    await asyncio.wait([task], timeout=10)
    assert rt.health_problem() == "the CSMS link task ended"
