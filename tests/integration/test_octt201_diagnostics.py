"""OCTT OCPP 2.0.1 block N cases against the real station (in process, on virtual time, over a
real websocket): N01 GetLog uploads to real HTTP / FTP servers on 127.0.0.1 with
LogStatusNotification, and N09 / N10 CustomerInformation with NotifyCustomerInformation."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile

import pytest

from station.ocpp201.handlers.diagnostics import NO_DATA, PART_CHARS, parts, upload_failure
from station.store import Store
from station.transfer import TransferError
from tests.conftest import var
from tests.integration.harness import now_iso
from tests.tls import make_ca, pem
from tests.transfer_servers import FtpFileServer, HttpFileServer

PASSWORD = "a-secret-password-0123"


@pytest.fixture
async def http():
    srv = await HttpFileServer().start()
    yield srv
    await srv.close()


def get_log(request_id: int, location: str, kind: str = "DiagnosticsLog", **extra) -> dict:
    log = {"remoteLocation": location}
    log.update(extra.pop("window", {}))
    return {"logType": kind, "requestId": request_id, "log": log, **extra}


def log_statuses(csms, request_id: int | None = None) -> list[str]:
    return [p["status"] for p in csms.calls("LogStatusNotification") if request_id is None or p.get("requestId") == request_id]


# -- N01 GetLog ------------------------------------------------------------------------------------
async def test_TC_N_25_CS_retrieve_log_information_diagnostics_log_success(csms201, booted201, http):
    await booted201(variables=[var("SecurityCtrlr", "BasicAuthPassword", PASSWORD)])
    r = await csms201.call("GetLog", get_log(41, http.url("/logs/")))
    assert r["status"] == "Accepted" and r["filename"].startswith("CS201-DiagnosticsLog-")
    assert await csms201.expect("LogStatusNotification") == {"status": "Uploading", "requestId": 41}
    assert await csms201.expect("LogStatusNotification", timeout=30) == {"status": "Uploaded", "requestId": 41}
    [(path, body)] = http.uploads.items()
    assert path == "/logs/" + r["filename"]
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        state = json.loads(tar.extractfile("state.json").read())
        log_text = tar.extractfile("log.txt").read().decode()
    assert state["ocpp"] == "2.0.1" and state["station_id"] == "CS201"
    assert state["configuration"]["OCPPCommCtrlr.HeartbeatInterval"] == "300"
    assert "BootNotification" in log_text or "connector" in log_text
    assert PASSWORD.encode() not in body and PASSWORD not in json.dumps(state)


async def test_TC_N_26_CS_retrieve_log_information_diagnostics_log_upload_failed(csms201, booted201):
    await booted201()
    server = await HttpFileServer(status=500).start()
    try:
        r = await csms201.call("GetLog", get_log(42, server.url("/logs/"), retries=2, retryInterval=15))
        assert r["status"] == "Accepted"
        await csms201.expect("LogStatusNotification", lambda p: p["status"] == "UploadFailure", timeout=120)
        assert log_statuses(csms201) == ["Uploading", "UploadFailure"]
        assert {p["requestId"] for p in csms201.calls("LogStatusNotification")} == {42}
        assert len(server.requests) == 3
        assert [round(b - a) for a, b in zip(server.times, server.times[1:], strict=False)] == [15, 15]
    finally:
        await server.close()


async def test_get_log_upload_refused_for_the_credentials_is_permission_denied(csms201, booted201):
    await booted201()
    server = await HttpFileServer(status=403).start()
    try:
        await csms201.call("GetLog", get_log(43, server.url("/logs/")))
        await csms201.expect("LogStatusNotification", lambda p: p["status"] not in ("Uploading",), timeout=30)
        assert log_statuses(csms201) == ["Uploading", "PermissionDenied"]
    finally:
        await server.close()


@pytest.mark.parametrize(("text", "status"), [
    ("upload to http://h:80/x: HTTP 403", "PermissionDenied"),
    ("FTP STOR /up/f: 530 Not logged in", "PermissionDenied"),
    ("FTP ftp://h:21/up/: PASS -> 530 Login incorrect", "PermissionDenied"),
    ("upload to http://h:80/x: HTTP 501", "NotSupportedOperation"),
    ("FTP ftp://h:21/up/: EPSV -> 502 no", "NotSupportedOperation"),
    ("upload to http://h:80/x: HTTP 400", "BadMessage"),
    ("upload to http://h:80/x: HTTP 500", "UploadFailure"),
    ("upload to http://h:80/x timed out after 120 s", "UploadFailure"),
])
def test_upload_failure_statuses(text, status):
    assert upload_failure(TransferError(text)) == status


async def test_get_log_to_a_location_the_station_cannot_use_is_rejected(csms201, booted201):
    """A remoteLocation the station cannot upload to: Rejected, nothing uploaded or reported."""
    await booted201()
    r = await csms201.call("GetLog", get_log(44, "gopher://127.0.0.1/logs/"))
    assert r["status"] == "Rejected"
    await csms201.no_call("LogStatusNotification", 10)


async def test_TC_N_35_CS_retrieve_log_information_security_log_success(csms201, booted201):
    """The security log's records in the window, over FTP: a security event before the window is
    not in it, one inside is."""
    await booted201()
    stranger = make_ca("Not a firmware signer")
    update = {"requestId": 1, "firmware": {"location": "http://127.0.0.1:1/fw", "retrieveDateTime": now_iso(),
                                           "signingCertificate": pem(stranger[0]), "signature": "AAAA"}}
    assert (await csms201.call("UpdateFirmware", update))["status"] == "InvalidCertificate"  # a security event
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSigningCertificate")
    server = await FtpFileServer().start()
    try:
        r = await csms201.call("GetLog", get_log(45, server.url("/up/"), "SecurityLog"))
        assert r["status"] == "Accepted" and r["filename"].startswith("CS201-SecurityLog-")
        await csms201.expect("LogStatusNotification", lambda p: p["status"] == "Uploaded", timeout=30)
        [(path, body)] = server.uploads.items()
        assert r["filename"] in path
        assert "InvalidFirmwareSigningCertificate" in [json.loads(line)["type"] for line in body.decode().splitlines()]
        await asyncio.sleep(60)
        await csms201.call("GetLog", get_log(46, server.url("/up2/"), "SecurityLog", window={"oldestTimestamp": now_iso()}))
        await csms201.expect("LogStatusNotification", lambda p: p["status"] == "Uploaded" and p["requestId"] == 46, timeout=30)
        assert [b for p, b in server.uploads.items() if p.startswith("/up2/")] == [b""]
    finally:
        await server.close()


async def test_TC_N_36_CS_retrieve_log_information_second_request(csms201, booted201):
    """A second GetLog while the first still uploads: AcceptedCanceled; the first is reported
    AcceptedCanceled and never Uploaded, the second is uploaded."""
    await booted201()
    server = await HttpFileServer(delay=60).start()
    try:
        first = await csms201.call("GetLog", get_log(47, server.url("/logs/")))
        assert first["status"] == "Accepted"
        await csms201.expect("LogStatusNotification", lambda p: p == {"status": "Uploading", "requestId": 47})
        await csms201.call("TriggerMessage", {"requestedMessage": "LogStatusNotification"})
        assert await csms201.expect("LogStatusNotification") == {"status": "Uploading", "requestId": 47}
        server.delay = 0
        second = await csms201.call("GetLog", get_log(48, server.url("/logs2/"), "SecurityLog"))
        assert second["status"] == "AcceptedCanceled"
        await csms201.expect("LogStatusNotification", lambda p: p == {"status": "Uploaded", "requestId": 48}, timeout=30)
        await csms201.no_call("LogStatusNotification", 120)
        assert log_statuses(csms201, 47) == ["Uploading", "Uploading", "AcceptedCanceled"]
        assert log_statuses(csms201, 48) == ["Uploading", "Uploaded"]
        assert "/logs2/" + second["filename"] in server.uploads
    finally:
        await server.close()


async def test_TC_F_15_CS_trigger_log_status_idle(csms201, booted201):
    await booted201()
    r = await csms201.call("TriggerMessage", {"requestedMessage": "LogStatusNotification"})
    assert r == {"status": "Accepted"}
    assert await csms201.expect("LogStatusNotification") == {"status": "Idle"}


# -- N09 / N10 CustomerInformation ------------------------------------------------------------------
def token(value: str) -> dict:
    return {"idToken": value, "type": "ISO14443"}


async def customer_information(csms, request_id: int, report: bool, clear: bool, **who) -> tuple[dict, list[dict]]:
    """The answer and, when Accepted, the NotifyCustomerInformation parts (up to tbc false)."""
    answer = await csms.call("CustomerInformation", {"requestId": request_id, "report": report, "clear": clear, **who})
    got: list[dict] = []
    if answer["status"] == "Accepted":
        while not got or got[-1]["tbc"]:
            got.append(await csms.expect("NotifyCustomerInformation", lambda p: p["requestId"] == request_id))
    return answer, got


def data(notes: list[dict]) -> str:
    return "".join(n["data"] for n in notes)


async def cached_tag(csms, sp, tag: str = "TAG1") -> str:
    """``tag`` authorized by the CSMS (so in the authorization cache) and charging."""
    await sp.plug()
    await sp.swipe(tag)
    await csms.expect("Authorize")
    started = await csms.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    return started["transactionInfo"]["transactionId"]


async def test_TC_N_27_CS_get_customer_information_accepted_and_data(csms201, booted201):
    sp = await booted201()
    tx_id = await cached_tag(csms201, sp)
    answer, notes = await customer_information(csms201, 51, True, False, idToken=token("TAG1"))
    assert answer == {"status": "Accepted"}
    assert [(n["seqNo"], n["tbc"]) for n in notes] == [(0, False)]
    assert notes[0]["generatedAt"].endswith("Z")
    text = data(notes)
    assert "authorization cache entry" in text and '"status": "Accepted"' in text
    assert tx_id in text  # the running transaction of that idToken
    assert "running charging session on EVSE 1 connector 1" in text
    # reporting does not clear
    _, again = await customer_information(csms201, 52, True, False, idToken=token("TAG1"))
    assert "authorization cache entry" in data(again)


async def test_TC_N_28_CS_get_customer_information_accepted_no_data(csms201, booted201):
    sp = await booted201()
    await cached_tag(csms201, sp)
    answer, notes = await customer_information(csms201, 53, True, False, idToken=token("SOMEONE-ELSE"))
    assert answer == {"status": "Accepted"}
    assert data(notes) == NO_DATA and notes[0]["seqNo"] == 0 and notes[0]["tbc"] is False


async def test_TC_N_30_CS_clear_customer_information_clear_and_report_with_data(csms201, booted201):
    """The cache entry is reported and cleared: presented again, the idToken is authorized with
    the CSMS again (LocalPreAuthorize would otherwise have used the cache)."""
    sp = await booted201(variables=[var("AuthCtrlr", "LocalPreAuthorize", "true")])
    tx_id = await cached_tag(csms201, sp)
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=30)
    await sp.unplug()
    authorizations = len(csms201.calls("Authorize"))
    answer, notes = await customer_information(csms201, 54, True, True, idToken=token("TAG1"))
    assert answer == {"status": "Accepted"}
    text = data(notes)
    assert "authorization cache entry" in text and "authorization cache entry cleared" in text and tx_id not in text
    assert "ended charging session on EVSE 1 connector 1" in text and "1 ended charging session(s) cleared" in text
    _, after = await customer_information(csms201, 55, True, False, idToken=token("TAG1"))
    assert data(after) == NO_DATA
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize", lambda p: p["idToken"]["idToken"] == "TAG1")
    assert len(csms201.calls("Authorize")) == authorizations + 1


async def test_TC_N_31_CS_clear_customer_information_clear_and_report_no_data(csms201, booted201):
    await booted201()
    answer, notes = await customer_information(csms201, 56, True, True, idToken=token("NOBODY"))
    assert answer == {"status": "Accepted"}
    assert data(notes) == NO_DATA


async def test_TC_N_32_CS_clear_customer_information_clear_and_no_report(csms201, booted201):
    sp = await booted201()
    await cached_tag(csms201, sp)
    answer, notes = await customer_information(csms201, 57, False, True, idToken=token("TAG1"))
    assert answer == {"status": "Accepted"}
    assert len(notes) == 1 and "Accepted" not in data(notes)  # nothing reported about the customer
    _, after = await customer_information(csms201, 58, True, False, idToken=token("TAG1"))
    assert "authorization cache entry" not in data(after)


async def test_TC_N_62_CS_clear_customer_information_clear_and_report_customer_identifier(csms201, booted201):
    """The station keeps no customer identifiers: Accepted, reported as holding nothing."""
    sp = await booted201()
    await cached_tag(csms201, sp)
    answer, notes = await customer_information(csms201, 59, True, True, customerIdentifier="CUST-0001")
    assert answer == {"status": "Accepted"}
    assert data(notes) == NO_DATA
    _, still = await customer_information(csms201, 60, True, False, idToken=token("TAG1"))
    assert "authorization cache entry" in data(still)  # another customer's data is untouched


async def test_TC_N_29_CS_get_customer_information_not_accepted(csms201, booted201):
    """A report request that names no customer (no idToken, customerCertificate or
    customerIdentifier): Invalid, nothing sent."""
    await booted201()
    answer, _ = await customer_information(csms201, 61, True, False)
    assert answer["status"] == "Invalid"
    await csms201.no_call("NotifyCustomerInformation", 10)


async def test_TC_N_33_CS_clear_customer_information_invalid(csms201, booted201):
    await booted201()
    answer, _ = await customer_information(csms201, 63, True, True)
    assert answer["status"] == "Invalid"
    answer, _ = await customer_information(csms201, 64, False, True)
    assert answer["status"] == "Invalid"
    await csms201.no_call("NotifyCustomerInformation", 10)


async def test_customer_information_asking_neither_report_nor_clear_is_rejected(csms201, booted201):
    await booted201()
    answer, _ = await customer_information(csms201, 65, False, False, idToken=token("TAG1"))
    assert answer["status"] == "Rejected"
    await csms201.no_call("NotifyCustomerInformation", 10)


def test_customer_information_parts_are_at_most_512_characters():
    text = "x" * (2 * PART_CHARS + 10)
    chunks = parts(text)
    assert [len(c) for c in chunks] == [PART_CHARS, PART_CHARS, 10] and "".join(chunks) == text
    assert parts("") == [NO_DATA]


def test_clearing_keeps_the_sessions_a_queued_message_still_needs():
    store = Store(":memory:")
    store.tx_save(1, 1, "TAG1", {"started_at": "x"}, open_=False)
    store.tx_save(2, 1, "TAG1", {"started_at": "y"}, open_=False)
    store.tx_save(3, 1, "TAG1", {"started_at": "z"}, open_=True)
    store.tx_save(4, 1, "TAG2", {"started_at": "w"}, open_=False)
    store.outbox_add("TransactionEvent", {}, 2)
    assert [t[0] for t in store.tx_of("TAG1")] == [1, 2, 3]
    assert store.tx_forget("TAG1") == 1
    assert [(t[0], t[3]) for t in store.tx_of("TAG1")] == [(2, False), (3, True)]
    assert [t[0] for t in store.tx_of("TAG2")] == [4]


async def test_TC_F_16_CS_trigger_log_status_uploading(csms201, booted201):
    """TriggerMessage LogStatusNotification while an upload runs: Uploading with its requestId."""
    await booted201()
    server = await HttpFileServer(delay=60).start()
    try:
        r = await csms201.call("GetLog", get_log(77, server.url("/logs/")))
        assert r["status"] == "Accepted"
        await csms201.expect("LogStatusNotification", lambda p: p["status"] == "Uploading")
        await csms201.call("TriggerMessage", {"requestedMessage": "LogStatusNotification"})
        assert await csms201.expect("LogStatusNotification") == {"status": "Uploading", "requestId": 77}
    finally:
        await server.close()
