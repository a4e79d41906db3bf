"""Interop: a whole session against a CSMS built on an independent OCPP implementation — the
`ocpp` library (mobilityhouse), its own routing, parsing and schema validation of every message
both ways — over a real websocket on 127.0.0.1, in OCPP 2.0.1 and 1.6. Whatever this station sends
that the library would refuse shows up as a CallError the station receives (and logs), and as a
missing step here."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import serve


async def until(check, timeout: float) -> None:
    """Wait (bounded) until ``check()`` is true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.1)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Csms201(ChargePoint201):
    """The library's 2.0.1 ChargePoint on the CSMS side of the connection."""

    def __init__(self, cid: str, ws) -> None:
        super().__init__(cid, ws)
        self.seen: list[tuple[str, object]] = []

    @on("BootNotification")
    async def boot(self, charging_station, reason, **_):
        self.seen.append(("BootNotification", reason))
        return result201.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on("StatusNotification")
    async def status(self, timestamp, connector_status, evse_id, connector_id, **_):
        self.seen.append(("StatusNotification", (evse_id, connector_status)))
        return result201.StatusNotification()

    @on("Heartbeat")
    async def heartbeat(self, **_):
        return result201.Heartbeat(current_time=_now())

    @on("Authorize")
    async def authorize(self, id_token, **_):
        self.seen.append(("Authorize", id_token["id_token"]))
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    async def transaction_event(self, event_type, timestamp, trigger_reason, seq_no, transaction_info, **kw):
        self.seen.append(("TransactionEvent", (event_type, seq_no, transaction_info["transaction_id"])))
        if "id_token" in kw:
            return result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return result201.TransactionEvent()

    @on("SecurityEventNotification")
    async def security_event(self, **_):
        return result201.SecurityEventNotification()

    @on("MeterValues")
    async def meter_values(self, **_):
        return result201.MeterValues()

    @on("NotifyEvent")
    async def notify_event(self, **_):
        return result201.NotifyEvent()


class Csms16(ChargePoint16):
    def __init__(self, cid: str, ws) -> None:
        super().__init__(cid, ws)
        self.seen: list[tuple[str, object]] = []

    @on("BootNotification")
    async def boot(self, charge_point_vendor, charge_point_model, **_):
        self.seen.append(("BootNotification", charge_point_model))
        return result16.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on("StatusNotification")
    async def status(self, connector_id, error_code, status, **_):
        self.seen.append(("StatusNotification", (connector_id, status)))
        return result16.StatusNotification()

    @on("Heartbeat")
    async def heartbeat(self, **_):
        return result16.Heartbeat(current_time=_now())

    @on("Authorize")
    async def authorize(self, id_tag, **_):
        self.seen.append(("Authorize", id_tag))
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    async def start_transaction(self, connector_id, id_tag, meter_start, timestamp, **_):
        self.seen.append(("StartTransaction", id_tag))
        return result16.StartTransaction(transaction_id=77, id_tag_info={"status": "Accepted"})

    @on("StopTransaction")
    async def stop_transaction(self, meter_stop, timestamp, transaction_id, **_):
        self.seen.append(("StopTransaction", transaction_id))
        return result16.StopTransaction()

    @on("MeterValues")
    async def meter_values(self, **_):
        return result16.MeterValues()

    @on("SecurityEventNotification")
    async def security_event(self, **_):
        return result16.SecurityEventNotification()


async def _library_csms(kind: type, subprotocol: str) -> tuple[object, list, int]:
    csmss: list = []

    async def session(ws) -> None:
        cp = kind(ws.request.path.rstrip("/").rsplit("/", 1)[-1], ws)
        csmss.append(cp)
        try:
            await cp.start()
        except Exception:  # the station closed the connection
            pass

    server = await serve(session, "127.0.0.1", 0, subprotocols=[subprotocol])  # type: ignore[list-item]
    return server, csmss, server.sockets[0].getsockname()[1]


def _actions(cp) -> list[str]:
    return [a for a, _ in cp.seen]


async def test_whole_session_201_against_the_ocpp_library(make_station201):
    server, csmss, port = await _library_csms(Csms201, "ocpp2.0.1")
    try:
        sp = make_station201(url=f"ws://127.0.0.1:{port}/ocpp", evses=1)
        sp.start()
        await until(lambda: csmss and ("StatusNotification", (1, "Available")) in csmss[-1].seen, timeout=20)
        cp = csmss[-1]
        got = await cp.call(call201.GetVariables(get_variable_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]))
        assert got.get_variable_result[0]["attribute_value"] == "300"
        await sp.plug()
        await sp.swipe("TAG1")
        await until(lambda: any(a == "TransactionEvent" and v[0] == "Started" for a, v in cp.seen), timeout=20)
        tx_id = next(v[2] for a, v in cp.seen if a == "TransactionEvent")
        stop = await cp.call(call201.RequestStopTransaction(transaction_id=tx_id))
        assert stop.status == "Accepted"
        await until(lambda: any(a == "TransactionEvent" and v[0] == "Ended" for a, v in cp.seen), timeout=20)
        events = [v for a, v in cp.seen if a == "TransactionEvent"]
        assert [e[1] for e in events] == list(range(len(events)))  # seqNo without gaps
        assert {e[2] for e in events} == {tx_id}
        trig = await cp.call(call201.TriggerMessage(requested_message="MeterValues"))
        assert trig.status == "Accepted"
        assert "CallError" not in sp.log() and "Traceback" not in sp.log()
    finally:
        server.close()
        await server.wait_closed()


async def test_whole_session_16_against_the_ocpp_library(make_station):
    server, csmss, port = await _library_csms(Csms16, "ocpp1.6")
    try:
        sp = make_station(url=f"ws://127.0.0.1:{port}/ocpp")
        sp.start()
        await until(lambda: csmss and ("StatusNotification", (1, "Available")) in csmss[-1].seen, timeout=20)
        cp = csmss[-1]
        got = await cp.call(call16.GetConfiguration(key=["HeartbeatInterval"]))
        assert got.configuration_key[0]["value"] == "300"
        await sp.plug()
        await sp.swipe("TAG1")
        await until(lambda: "StartTransaction" in _actions(cp), timeout=20)
        stop = await cp.call(call16.RemoteStopTransaction(transaction_id=77))
        assert stop.status == "Accepted"
        await until(lambda: ("StopTransaction", 77) in cp.seen, timeout=20)
        assert "CallError" not in sp.log() and "Traceback" not in sp.log()
    finally:
        server.close()
        await server.wait_closed()
