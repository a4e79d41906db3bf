"""wss:// to a real TLS CSMS on 127.0.0.1, with certificates made by the test (tests/tls.py).

Security profile 2 (OCTT TC_086_CS, TLS with a server-side certificate): the station verifies the
CSMS certificate (against ``station.ca_file`` or the system's CAs), connects, sends Basic auth and
boots. A station that does not trust the certificate says why: in its log and in ``last_error``
of GET /api/status, and it keeps trying.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

from station.link import Link
from station.scheduler import VirtualTimeLoop
from tests.integration.harness import ScriptedCsms, until
from tests.tls import Pki, make_pki, server_context

KEY = "0123456789abcdef0123"
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def run_virtual(main):  # noqa: ANN001, ANN201 - a coroutine function and its result
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def tls_config(tmp_path: Path, pki: Pki | None, profile: int = 2) -> str:
    cfg = tmp_path / "tls.toml"
    ca = f'ca_file = "{pki.ca_file}"\n' if pki else ""
    cfg.write_text(f'[station]\nsecurity_profile = {profile}\ncsms_url = "wss://127.0.0.1/ocpp"\n{ca}\n[[evse]]\nid = 1\n')
    return str(cfg)


async def tls_csms(csms: ScriptedCsms, pki: Pki) -> str:
    """The test's CSMS again, now listening with TLS: its wss:// URL."""
    await csms.close()
    return await csms.start(ssl=server_context(pki))


# -- the link alone ------------------------------------------------------------------------------
async def _link_against_tls(pki: Pki, ca_file: str | None, wait: float) -> tuple[Link, ScriptedCsms, list[dict]]:
    csms = ScriptedCsms()
    url = await csms.start(ssl=server_context(pki))
    answers: list[dict] = []

    async def on_open() -> None:
        answers.append(await link.call("BootNotification", BOOT))

    async def handler(action: str, payload: dict) -> dict:
        return {}

    link = Link(url=url + "/CS1", version="1.6", handler=handler, on_open=on_open, on_close=lambda: None,
                log=logging.getLogger("test.link.tls"), ca_file=ca_file)
    task = asyncio.ensure_future(link.run())
    await asyncio.sleep(wait)
    state = link.state
    await link.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await csms.close()
    link.state = state
    return link, csms, answers


def test_wss_link_verifies_the_csms_certificate_with_ca_file_and_boots(tmp_path):
    """A wss:// link without an ssl context of its own (what the station passes) builds a verifying
    one: it connects and boots. (It raised ValueError and died silently before.)"""
    pki = make_pki(tmp_path)
    link, csms, answers = run_virtual(lambda: _link_against_tls(pki, str(pki.ca_file), 5))
    assert csms.connections == 1 and answers and answers[0]["status"] == "Accepted"
    assert csms.calls("BootNotification") == [BOOT]
    assert link.last_error == "" and link.state == "connected"


def test_wss_link_that_does_not_trust_the_certificate_says_why_and_keeps_trying(tmp_path, caplog):
    pki = make_pki(tmp_path)
    caplog.set_level(logging.INFO, "test.link.tls")
    link, csms, _ = run_virtual(lambda: _link_against_tls(pki, None, 30))
    assert csms.connections == 0
    assert "not trusted" in link.last_error and "certificate verify failed" in link.last_error, link.last_error
    assert "station.ca_file" in link.last_error
    failures = [r for r in caplog.records if r.levelno == logging.WARNING and "certificate verify failed" in r.getMessage()]
    assert len(failures) >= 3, [r.getMessage() for r in caplog.records]  # supervised: it goes on trying
    assert link.state == "waiting"


def test_wss_link_with_a_missing_ca_file_names_it(tmp_path):
    pki = make_pki(tmp_path)
    missing = tmp_path / "no-such-ca.pem"
    link, csms, _ = run_virtual(lambda: _link_against_tls(pki, str(missing), 5))
    assert csms.connections == 0
    assert "cannot read CA file" in link.last_error and str(missing) in link.last_error, link.last_error


def test_wss_link_with_another_ca_is_not_trusted(tmp_path):
    pki = make_pki(tmp_path / "csms")
    other = make_pki(tmp_path / "other", ca_name="Another Root CA")
    link, csms, _ = run_virtual(lambda: _link_against_tls(pki, str(other.ca_file), 5))
    assert csms.connections == 0 and "not trusted" in link.last_error and str(other.ca_file) in link.last_error


# -- the whole station -----------------------------------------------------------------------------
async def test_TC_086_station_connects_over_wss_with_profile_2_and_boots(csms, make_station, tmp_path):
    """Security profile 2: TLS with the CSMS certificate checked against station.ca_file, HTTP
    Basic auth with the AuthorizationKey; the station boots and reports its connectors."""
    pki = make_pki(tmp_path / "pki")
    url = await tls_csms(csms, pki)
    sp = make_station(config=tls_config(tmp_path, pki), url=url, ocpp_config={"AuthorizationKey": KEY})
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect("StatusNotification", lambda p: p["connectorId"] == 1, timeout=10, since=0)
    assert csms.auth_headers == ["Basic " + base64.b64encode(f"CS001:{KEY}".encode()).decode()]
    await sp.wait_api()
    status = await sp.status()
    assert status["connected"] and status["link"] == "connected" and status["registration"] == "Accepted"
    assert status["last_error"] is None


async def status_with_a_link_error(sp) -> dict:  # noqa: ANN001
    """GET /api/status once it names a link error (within 10 s)."""

    async def check() -> dict | None:
        status = await sp.status()
        return status if status["last_error"] else None

    return await until(check, timeout=10.0)


async def test_station_that_does_not_trust_the_csms_certificate_logs_why_and_shows_it(csms, make_station, tmp_path):
    """No ca_file and a CSMS certificate of a private CA: no connection, and the reason is in the
    log (WARNING) and in GET /api/status last_error, while the link keeps trying."""
    pki = make_pki(tmp_path / "pki")
    url = await tls_csms(csms, pki)
    sp = make_station(config=tls_config(tmp_path, None), url=url, ocpp_config={"AuthorizationKey": KEY})
    sp.start()
    await sp.wait_api()
    status = await status_with_a_link_error(sp)
    assert "not trusted" in status["last_error"] and "certificate verify failed" in status["last_error"], status
    assert not status["connected"] and status["link"] in ("waiting", "connecting")
    assert csms.connections == 0
    assert "WARNING" in sp.log() and "certificate verify failed" in sp.log()


async def test_station_with_a_ca_file_it_cannot_read_says_so(csms, make_station, tmp_path):
    pki = make_pki(tmp_path / "pki")
    url = await tls_csms(csms, pki)
    (tmp_path / "gone").mkdir()
    broken = Pki(tmp_path / "gone" / "ca.pem", pki.cert_file, pki.key_file)
    sp = make_station(config=tls_config(tmp_path, broken), url=url, ocpp_config={"AuthorizationKey": KEY})
    sp.start()
    await sp.wait_api()
    status = await status_with_a_link_error(sp)
    assert "cannot read CA file" in status["last_error"] and "gone/ca.pem" in status["last_error"], status
