"""The security event SecurityLogWasCleared: the security log's bound (SECURITY_LOG_MAX records,
the oldest half dropped when it is full) reports what it drops. In process, virtual time, over the
real websocket; asserts the SecurityEventNotification the CSMS receives.
"""

from __future__ import annotations

from station.ocpp16.handlers import security as security_handlers
from tests.integration.test_security_events import events


async def test_security_log_was_cleared_when_its_bound_drops_records(csms, booted, monkeypatch):
    monkeypatch.setattr(security_handlers, "SECURITY_LOG_MAX", 6)
    sp = await booted()
    svc = sp.rt.adapter.security
    # each refused CertificateSigned is an InvalidChargePointCertificate event in the security log
    for _ in range(6):
        assert (await csms.call("CertificateSigned", {"certificateChain": "not a certificate"}))["status"] == "Rejected"
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "SecurityLogWasCleared", timeout=30)
    assert "oldest" in ev["techInfo"]
    lines = svc.log_file.read_text().splitlines()
    assert len(lines) <= 6
    assert any('"SecurityLogWasCleared"' in line for line in lines)
    assert len(events(csms, "SecurityLogWasCleared")) == 1
