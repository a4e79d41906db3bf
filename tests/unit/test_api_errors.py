"""Local HTTP API error handling and security (station/api.py): the Api class in-process in front
of a real Runtime (simulated hardware, connected to a scripted CSMS on 127.0.0.1), spoken to over
a real TCP socket. Errors are 4xx with a JSON body {"error": "..."}, never a traceback. A POST needs
Content-Type: application/json (415) and no foreign Origin (403, cross-site request forgery); with
a token every request needs it (401)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from station.api import Api
from station.config import load
from station.runtime import Runtime
from tests.integration.harness import ScriptedCsms

ROOT = Path(__file__).resolve().parents[2]


class Http:
    """A tiny HTTP/1.1 client on one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def raw(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(data)
        await self.writer.drain()
        status_line = await asyncio.wait_for(self.reader.readline(), 5)
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection") == "close":
            self.writer.close()
            self.writer = None
        return status, headers, body

    async def request(self, method: str, path: str, body: bytes | str | dict | list | None = None,
                      headers: dict[str, str | None] | None = None) -> tuple[int, dict]:
        if isinstance(body, dict | list):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        body = body or b""
        head = f"{method} {path} HTTP/1.1\r\n"
        json_type = {"Content-Type": "application/json"} if method == "POST" else {}
        for k, v in {"Host": f"127.0.0.1:{self.port}", "Content-Length": str(len(body)), **json_type,
                     **(headers or {})}.items():
            if v is None:
                continue
            head += f"{k}: {v}\r\n"
        status, hdrs, raw = await self.raw(head.encode() + b"\r\n" + body)
        assert hdrs["content-type"] == "application/json"
        assert b"Traceback" not in raw
        return status, json.loads(raw)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _serve(tmp_path, token: str | None = None):
    csms = ScriptedCsms()
    url = await csms.start()
    cfg = load(ROOT / "config" / "sim.toml")  # two EVSEs: 1 with a simulated reader, 2 without one
    cfg.csms_url, cfg.state_dir, cfg.api = url, str(tmp_path / "state"), None
    log = logging.getLogger("test.api")
    rt = Runtime(cfg, log=log)
    task = asyncio.ensure_future(rt.run())
    for _ in range(200):
        if rt.adapter is not None and rt.adapter.online:
            break
        await asyncio.sleep(0.02)
    assert rt.adapter is not None and rt.adapter.online
    for cid in (0, 1, 2):  # the boot's status reports are in (tests compare what the CSMS gets later)
        await csms.expect("StatusNotification", lambda p, c=cid: p["connectorId"] == c, timeout=10, since=0)
    server = Api(lambda: rt, log, token=token)
    http = Http(await server.start("127.0.0.1", 0))
    yield http, rt, csms
    http.close()
    await server.close()
    rt.stop()
    await asyncio.wait_for(task, 10)
    await csms.close()
    assert not csms.schema_problems


@pytest.fixture
async def api(tmp_path):
    async for served in _serve(tmp_path):
        yield served


TOKEN = "0123456789abcdef-token"


@pytest.fixture
async def api_with_token(tmp_path):
    async for served in _serve(tmp_path, TOKEN):
        yield served


def error(result: tuple[int, dict], status: int, starts: str) -> None:
    code, body = result
    assert code == status, body
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert body["error"].startswith(starts), body["error"]


async def test_status_and_a_good_control(api):
    http, rt, csms = api
    code, body = await http.request("GET", "/api/status")
    assert code == 200 and body["id"] == "SIM-001" and [e["id"] for e in body["evses"]] == [1, 2]
    assert body["connected"] is True and body["registration"] == "Accepted"
    assert await http.request("POST", "/api/evses/1/plug", {"max_current": 16, "phases": 1}) == (200, {"ok": True})
    await csms.expect_status(1, "Preparing", timeout=5)


@pytest.mark.parametrize("path", ["/api/evses/3/plug", "/api/evses/0/swipe", "/api/evses/99/unplug"])
async def test_unknown_evse_is_404(api, path):
    http, _, _ = api
    error(await http.request("POST", path, {"id_token": "A"}), 404, f"no EVSE {path.split('/')[3]}")
    _, body = await http.request("POST", path, {"id_token": "A"})
    assert "this station has 1, 2" in body["error"]


@pytest.mark.parametrize("path", ["/api/nope", "/api/evses/1/explode", "/api/evses/x/plug", "/", "/api/status/1"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_path_is_404_whatever_the_method(api, method, path):
    http, _, _ = api
    error(await http.request(method, path), 404, "no such endpoint")


@pytest.mark.parametrize(
    "method,path,allow",
    [("POST", "/api/status", "GET, HEAD"), ("DELETE", "/api/status", "GET, HEAD"), ("GET", "/api/evses/1/plug", "POST"),
     ("PUT", "/api/evses/1/swipe", "POST"), ("GET", "/api/link", "POST"), ("GET", "/api/evses/9/plug", "POST")],
)
async def test_wrong_method_is_405_with_allow(api, method, path, allow):
    http, _, _ = api
    head = f"{method} {path} HTTP/1.1\r\nContent-Length: 0\r\nContent-Type: application/json\r\n\r\n".encode()
    status, headers, raw = await http.raw(head)
    assert status == 405 and headers["allow"] == allow
    assert json.loads(raw)["error"]


BAD_BODIES = [
    ("/api/evses/1/plug", "{not json", "body is not valid JSON"),
    ("/api/evses/1/plug", "[1, 2]", "body must be a JSON object"),
    ("/api/evses/1/plug", '"plug"', "body must be a JSON object"),
    ("/api/evses/1/plug", {"max_current": 100}, "max_current: must be a number of amperes between 0 and 80"),
    ("/api/evses/1/plug", {"max_current": "16"}, "max_current: must be a number"),
    ("/api/evses/1/plug", {"max_current": True}, "max_current: must be a number"),
    ("/api/evses/1/plug", {"phases": 4}, "phases: must be 1, 2 or 3"),
    ("/api/evses/1/plug", {"phases": True}, "phases: must be 1, 2 or 3"),
    ("/api/evses/1/swipe", {}, "id_token: missing"),
    ("/api/evses/1/swipe", {"id_token": 42}, "id_token: must be str"),
    ("/api/evses/1/swipe", {"id_token": ""}, "id_token: must be 1-20 characters"),
    ("/api/evses/1/swipe", {"id_token": "X" * 21}, "id_token: must be 1-20 characters"),
    ("/api/evses/1/swipe", {"id_token": "A", "type": "Passport"}, "type: must be one of"),
    ("/api/evses/1/ev", {}, "suspend: missing"),
    ("/api/evses/1/ev", {"suspend": "yes"}, "suspend: must be true or false"),
    ("/api/evses/1/fault", {"error_code": "Gremlins", "active": True}, "error_code: must be an OCPP error code"),
    ("/api/evses/1/fault", {"error_code": "NoError", "active": True}, "error_code: must be an OCPP error code"),
    ("/api/evses/1/fault", {"error_code": "GroundFailure"}, "active: missing"),
    ("/api/evses/1/sim", {"lock_stuck": True}, "lock_stuck: unknown switch"),
    ("/api/evses/1/sim", {"relay_welded": 1}, "relay_welded: must be true or false"),
    ("/api/link", {}, "connected: missing"),
    ("/api/link", {"connected": "no"}, "connected: must be true or false"),
]


@pytest.mark.parametrize("path,body,message", BAD_BODIES, ids=[f"{b[0].split('/')[-1]}-{b[2][:24]}" for b in BAD_BODIES])
async def test_bad_body_is_400(api, path, body, message):
    http, rt, _ = api
    error(await http.request("POST", path, body), 400, message)
    assert rt.station is not None and rt.station.connectors[1].transaction is None


async def test_bad_requests_leave_the_station_untouched(api):
    http, rt, _ = api
    plant = rt.hw[1].plant
    await http.request("POST", "/api/evses/1/plug", {"max_current": 100})
    await http.request("POST", "/api/evses/1/sim", {"lock_jammed": True, "bogus": 1})
    assert plant.ev.plugged is False and plant.lock.jammed is False


async def test_malformed_http_is_400_and_closes(api):
    http, _, _ = api
    status, headers, raw = await http.raw(b"NONSENSE\r\n\r\n")
    assert status == 400 and json.loads(raw) == {"error": "bad request line"} and headers["connection"] == "close"


async def test_bad_content_length_is_400(api):
    http, _, _ = api
    status, headers, raw = await http.raw(b"POST /api/evses/1/plug HTTP/1.1\r\nContent-Length: lots\r\n\r\n")
    assert status == 400 and json.loads(raw)["error"].startswith("Content-Length")


async def test_huge_body_is_413(api):
    http, _, _ = api
    status, _, raw = await http.raw(b"POST /api/evses/1/plug HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n")
    assert status == 413 and json.loads(raw) == {"error": "body too large"}


async def test_keep_alive_serves_several_requests_on_one_connection(api):
    http, _, _ = api
    assert (await http.request("POST", "/api/nope"))[0] == 404
    writer = http.writer
    assert (await http.request("GET", "/api/status"))[0] == 200
    assert http.writer is writer


async def test_an_internal_failure_is_500_json_not_a_traceback(api, monkeypatch):
    http, rt, _ = api

    def broken(*a, **kw):
        raise RuntimeError("simulated EV fell over")

    monkeypatch.setattr(rt.hw[1].plant, "plug", broken)
    error(await http.request("POST", "/api/evses/1/plug"), 500, "internal error: simulated EV fell over")
    assert (await http.request("GET", "/api/status"))[0] == 200  # the server lives on


async def test_swipe_without_a_simulated_reader_goes_to_the_station(api):
    """EVSE 2 of config/sim.toml has reader kind "none": the API hands the card to the station."""
    http, rt, csms = api
    assert await http.request("POST", "/api/evses/2/swipe", {"id_token": "CARD2"}) == (200, {"ok": True})
    await csms.expect("Authorize", lambda p: p["idTag"] == "CARD2", timeout=5)


# -- cross-site request forgery and the token -------------------------------------------------------

@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/jsonp", ""])
async def test_a_post_without_json_content_type_is_415_and_does_nothing(api, ctype):
    """An HTML form or a no-cors fetch from any web page can send these without asking."""
    http, rt, csms = api
    mark = csms.mark()
    error(await http.request("POST", "/api/link", {"connected": False}, headers={"Content-Type": ctype}), 415,
          "Content-Type: a POST must be application/json")
    error(await http.request("POST", "/api/evses/1/plug", {}, headers={"Content-Type": ctype}), 415, "Content-Type")
    assert rt.adapter.link.is_connected and rt.hw[1].plant.ev.plugged is False
    await asyncio.sleep(0.2)
    assert [(r.action, r.payload) for r in csms.received[mark:]] == []


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
async def test_json_content_types_are_accepted(api, ctype):
    http, rt, _ = api
    assert await http.request("POST", "/api/evses/1/plug", {}, headers={"Content-Type": ctype}) == (200, {"ok": True})
    assert rt.hw[1].plant.ev.plugged is True


@pytest.mark.parametrize("origin", ["http://evil.example", "https://127.0.0.1:1", "null", "http://127.0.0.1",
                                    "http://localhost.evil.example:{port}", "http://192.168.1.5:{port}"])
async def test_a_post_from_a_foreign_origin_is_403(api, origin):
    http, rt, _ = api
    origin = origin.format(port=http.port)
    error(await http.request("POST", "/api/evses/1/fault", {"error_code": "GroundFailure", "active": True},
                             headers={"Origin": origin}), 403, "Origin: ")
    assert rt.station.connectors[1].faults == {}


async def test_a_dns_rebinding_page_is_403_even_when_origin_matches_host(api):
    """evil.example resolved to 127.0.0.1: the browser sends Origin and Host of evil.example."""
    http, rt, _ = api
    name = f"evil.example:{http.port}"
    error(await http.request("POST", "/api/evses/1/plug", {}, headers={"Origin": f"http://{name}", "Host": name}),
          403, "Origin: ")
    assert rt.hw[1].plant.ev.plugged is False


@pytest.mark.parametrize("origin,host", [("http://127.0.0.1:{port}", None), ("http://localhost:{port}", None),
                                         ("http://[::1]:{port}", None), ("http://localhost:9999", "localhost:9999")])
async def test_the_apis_own_page_may_post(api, origin, host):
    """Its own origin, or the loopback name the browser used (an SSH tunnel to another port)."""
    http, rt, _ = api
    headers = {"Origin": origin.format(port=http.port)}
    if host:
        headers["Host"] = host
    assert await http.request("POST", "/api/evses/1/plug", {}, headers=headers) == (200, {"ok": True})


async def test_get_status_needs_no_content_type(api):
    http, _, _ = api
    code, body = await http.request("GET", "/api/status", headers={"Origin": "http://evil.example"})
    assert code == 200 and body["id"] == "SIM-001"


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-0123456789", "Basic {token}", "Bearer", "{token}",
                                  "Bearer {token}x"])
@pytest.mark.parametrize("method,path", [("GET", "/api/status"), ("POST", "/api/link")])
async def test_with_a_token_every_request_needs_it(api_with_token, auth, method, path):
    http, rt, _ = api_with_token
    body = '{"connected": false}'
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + (f"Authorization: {auth.format(token=TOKEN)}\r\n" if auth else "") + "\r\n")
    status, headers, raw = await http.raw((head + body).encode())
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert json.loads(raw) == {"error": "token missing or wrong: send Authorization: Bearer <token>"}
    assert rt.adapter.link.is_connected


async def test_the_right_token_is_let_in(api_with_token):
    http, rt, _ = api_with_token
    auth = {"Authorization": f"Bearer {TOKEN}"}
    code, body = await http.request("GET", "/api/status", headers=auth)
    assert code == 200 and body["id"] == "SIM-001"
    assert await http.request("POST", "/api/evses/1/plug", {}, headers=auth) == (200, {"ok": True})
    # the token does not replace the other checks
    error(await http.request("POST", "/api/evses/1/plug", {}, headers={**auth, "Content-Type": "text/plain"}), 415,
          "Content-Type")


# -- issue 8: hostile or sloppy HTTP gets a 4xx/5xx and a closed connection, never a traceback -------

def no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_deeply_nested_json_is_400_not_500(api, caplog):
    http, rt, _ = api
    for body in ("[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000):
        error(await http.request("POST", "/api/evses/1/plug", body), 400, "body is not valid JSON: nested too deeply")
    error(await http.request("POST", "/api/evses/1/plug", b'{"max_current": "\xff"}'), 400, "body is not valid JSON")
    assert rt.hw[1].plant.ev.plugged is False
    no_tracebacks(caplog)


@pytest.mark.parametrize("size", [8193, 70000])
async def test_an_over_long_request_line_is_414_and_closes(api, caplog, size):
    """A line over 64 KiB used to drop the connection with a ValueError traceback in the log."""
    http, _, _ = api
    status, headers, raw = await http.raw(b"GET /api/" + b"a" * size + b" HTTP/1.1\r\n\r\n")
    assert status == 414 and headers["connection"] == "close"
    assert json.loads(raw) == {"error": "request line longer than 8192 bytes"}
    no_tracebacks(caplog)


@pytest.mark.parametrize("size", [8193, 70000])
async def test_an_over_long_header_line_is_431_and_closes(api, caplog, size):
    http, _, _ = api
    status, headers, raw = await http.raw(b"GET /api/status HTTP/1.1\r\nX-Big: " + b"b" * size + b"\r\n\r\n")
    assert status == 431 and headers["connection"] == "close"
    assert json.loads(raw) == {"error": "a header line is longer than 8192 bytes"}
    no_tracebacks(caplog)


async def test_more_than_100_headers_or_a_32_kib_head_is_431(api, caplog):
    http, _, _ = api
    many = "".join(f"X-H{i}: {i}\r\n" for i in range(100))
    status, _, _ = await http.raw(f"GET /api/status HTTP/1.1\r\n{many}\r\n".encode())
    assert status == 200  # 100 is fine
    status, headers, raw = await http.raw(f"GET /api/status HTTP/1.1\r\n{many}X-H100: x\r\n\r\n".encode())
    assert (status, json.loads(raw)) == (431, {"error": "more than 100 header lines"}) and headers["connection"] == "close"
    big = "".join(f"X-B{i}: {'v' * 4000}\r\n" for i in range(9))
    status, _, raw = await http.raw(f"GET /api/status HTTP/1.1\r\n{big}\r\n".encode())
    assert (status, json.loads(raw)) == (431, {"error": "request head larger than 32768 bytes"})
    no_tracebacks(caplog)


async def _head_request(port: int, path: str) -> tuple[bytes, bytes]:
    """HEAD then GET on one connection: what came back for HEAD (head) and for GET (status line)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /api/status HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        after = await asyncio.wait_for(reader.readline(), 5)  # a body after the HEAD answer would be read here
        return head, after
    finally:
        writer.close()


async def test_head_gets_the_head_of_get_without_a_body(api):
    http, _, _ = api
    _, get_headers, get_body = await http.raw(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
    head, after = await _head_request(http.port, "/api/status")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    lines = dict(ln.split(": ", 1) for ln in head.decode().split("\r\n")[1:] if ln)
    assert lines["Content-Type"] == "application/json"
    # the status may change between the two requests by a few digits; its size stays close
    assert abs(int(lines["Content-Length"]) - int(get_headers["content-length"])) < 16
    assert after == b"HTTP/1.1 200 OK\r\n"  # no body bytes came in between


@pytest.mark.parametrize("path,status,allow", [("/api/evses/1/plug", 405, "POST"), ("/api/nope", 404, None)])
async def test_head_of_a_post_only_or_unknown_path_is_an_error_head_only(api, path, status, allow):
    http, _, _ = api
    head, after = await _head_request(http.port, path)
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert (f"Allow: {allow}\r\n".encode() in head) if allow else b"Allow:" not in head
    assert after == b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize("head,status,message", [
    ("POST /api/link HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 501, "Transfer-Encoding is not supported"),
    ("POST /api/link HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 20\r\n", 400, "content-length: given twice"),
    ("POST /api/link HTTP/1.1\r\nContent-Length: +2\r\n", 400, "Content-Length: not a number"),
    ("POST /api/link HTTP/1.1\r\nContent-Length: 1_0\r\n", 400, "Content-Length: not a number"),
    ("POST /api/link HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n", 413, "body too large"),
    ("GET /api/status HTTP/1.1\r\nNo colon here\r\n", 400, "bad header line"),
    ("GET /api/status HTTP/1.1\r\nBad Name: x\r\n", 400, "bad header line"),
    ("GET /api/status HTTP/2.0\r\n", 505, "HTTP/2.0 is not supported"),
    ("GET /api/status\r\n", 400, "bad request line"),
    ("GET  /api/status HTTP/1.1\r\n", 400, "bad request line"),
])
async def test_malformed_heads_are_refused_and_close(api, caplog, head, status, message):
    http, rt, _ = api
    code, headers, raw = await http.raw(head.encode() + b"\r\n")
    assert code == status and headers["connection"] == "close"
    assert json.loads(raw)["error"].lower().startswith(message.lower())
    assert rt.adapter.link.is_connected
    no_tracebacks(caplog)


async def test_expect_100_continue_and_http_1_0(api):
    """curl sends Expect: 100-continue for a body over 1 KiB (and waited a second for nothing)."""
    http, rt, _ = api
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    body = json.dumps({"max_current": 16, "pad": "x" * 2000}).encode()
    writer.write(b"POST /api/evses/1/plug HTTP/1.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 200 OK\r\n"
    writer.close()
    assert rt.hw[1].plant.ev.plugged is True
    status, headers, _ = await http.raw(b"GET /api/status HTTP/1.0\r\n\r\n")
    assert status == 200 and headers["connection"] == "close"  # HTTP/1.0: no keep-alive unless asked
    status, headers, _ = await http.raw(b"GET /api/status HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert status == 200 and headers["connection"] == "keep-alive"
