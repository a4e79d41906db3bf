"""OCTT 2.0.1 B09 / B10: SetNetworkProfile and the migration to another network connection profile
(a new CSMS, a new CSMS root) with the fallback after NetworkProfileConnectionAttempts, in process
over real websockets (and TLS where the profile says so) on 127.0.0.1."""

from __future__ import annotations

import asyncio

from tests.conftest import var
from tests.integration.harness import ScriptedCsms
from tests.integration.test_octt201_security import (
    PASSWORD,
    basic,
    get_variable,
    network_profile,
    plain_station,
    set_variable,
    tls_station,
)
from tests.tls import make_ca, make_pki, pem, server_context


async def migrate(csms: ScriptedCsms, url: str, profile: int, priority: str = "1,0", message_timeout: int = 30) -> int:
    """SetNetworkProfile slot 1, NetworkConfigurationPriority, Reset OnIdle: the mark before the reset."""
    request = network_profile(url, profile)
    request["connectionData"]["messageTimeout"] = message_timeout
    assert (await csms.call("SetNetworkProfile", request))["status"] == "Accepted"
    r = await set_variable(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", priority)
    assert r["attributeStatus"] == "Accepted", r
    mark = csms.mark()
    assert (await csms.call("Reset", {"type": "OnIdle"}))["status"] == "Accepted"
    return mark


async def dead_url(tls: bool = False) -> str:
    """A CSMS URL where nothing listens."""
    gone = ScriptedCsms(version="2.0.1")
    url = await gone.start()
    await gone.close()
    return url.replace("ws://", "wss://") if tls else url


async def test_TC_B_43_CS_set_new_network_connection_profile_rejected(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    r = await csms201.call("SetNetworkProfile", network_profile(f"ws://127.0.0.1:{csms201.port}/ocpp", 1, slot=999))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "InvalidConfSlot"
    for bad in ({"ocppVersion": "OCPP16"}, {"ocppTransport": "SOAP"}, {"ocppCsmsUrl": "wss://127.0.0.1:1/ocpp"},
                {"ocppCsmsUrl": "ws://127.0.0.1:99999/ocpp"}):
        request = network_profile(f"ws://127.0.0.1:{csms201.port}/ocpp", 1)
        request["connectionData"].update(bad)
        assert (await csms201.call("SetNetworkProfile", request))["status"] == "Rejected", bad
    in_use = network_profile(f"ws://127.0.0.1:{csms201.port}/other", 1, slot=0)
    assert (await csms201.call("SetNetworkProfile", in_use))["status"] == "Rejected"  # the slot in use
    # a priority naming a slot without a profile
    r = await set_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,0")
    assert r["attributeStatus"] == "Rejected"
    assert await get_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "0"


async def test_set_new_network_connection_profile_accepted_kept_across_a_restart(csms201, make_station201, tmp_path):
    sp = await plain_station(csms201, make_station201, tmp_path)
    r = await csms201.call("SetNetworkProfile", network_profile(f"ws://127.0.0.1:{csms201.port}/ocpp", 1))
    assert r == {"status": "Accepted"}
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=30, since=csms201.mark())
    r = await set_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")
    assert r["attributeStatus"] == "Accepted"  # slot 1 is still known


async def test_TC_B_45_CS_migrate_to_new_connection_profile_same_csms_root(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    other = ScriptedCsms(version="2.0.1")
    url = await other.start()
    try:
        assert await get_variable(csms201, "OCPPCommCtrlr", "MessageTimeout", "Default") == "30"
        await migrate(csms201, url, 1, message_timeout=45)
        boot = await other.expect("BootNotification", timeout=60, since=0)
        assert boot["reason"] == "RemoteReset"
        assert other.auth_headers == [basic(PASSWORD)] and other.paths == ["/ocpp/CS201"]
        assert await get_variable(other, "OCPPCommCtrlr", "ActiveNetworkProfile") == "1"
        assert await get_variable(other, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "1,0"
        assert await get_variable(other, "OCPPCommCtrlr", "MessageTimeout", "Default") == "45"  # the profile's
        assert not other.schema_problems, other.schema_problems
    finally:
        await other.close()


async def test_TC_B_46_CS_migrate_fallback_mechanism_same_csms_root(csms201, make_station201, tmp_path):
    """The new profile's CSMS cannot be reached: after NetworkProfileConnectionAttempts (2) failed
    attempts the station connects with the next slot of the priority, the previous CSMS."""
    sp = await plain_station(csms201, make_station201, tmp_path,
                             variables=[var("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2")])
    mark = await migrate(csms201, await dead_url(), 1)
    connections = csms201.connections
    boot = await csms201.expect("BootNotification", timeout=120, since=mark)
    assert boot["reason"] == "RemoteReset"
    assert csms201.connections == connections + 1
    assert await get_variable(csms201, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"
    assert sp.log().count("CSMS connection failed") == 2
    assert "network connection profile 1 failed to connect 2 times: trying profile 0" in sp.log()


async def test_TC_B_49_CS_migrate_fallback_after_attempts_per_priority_same_csms_root(csms201, make_station201, tmp_path):
    sp = await plain_station(csms201, make_station201, tmp_path,
                             variables=[var("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "1")])
    mark = await migrate(csms201, await dead_url(), 1)
    await csms201.expect("BootNotification", timeout=120, since=mark)
    assert sp.log().count("CSMS connection failed") == 1
    # a lost connection is no failed attempt: the station comes back on the profile that works
    await csms201.drop_connection()
    await asyncio.wait_for(csms201.connected.wait(), 120)
    assert sp.log().count("CSMS connection failed") == 1
    assert await get_variable(csms201, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"


async def test_TC_B_50_CS_migrate_success_new_csms_root_new_csms(csms201, make_station201, tmp_path):
    """A station on profile 2 migrates to a CSMS whose certificate is of another root: the CSMS
    installs that root first (M05), then SetNetworkProfile, priority, Reset."""
    old, new = make_pki(tmp_path / "old"), make_pki(tmp_path / "new", ca_name="New CSMS Root")
    await tls_station(csms201, make_station201, tmp_path, old, profile=2)
    other = ScriptedCsms(version="2.0.1")
    url = await other.start(ssl=server_context(new))
    try:
        r = await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate",
                                                      "certificate": new.ca_file.read_text()})
        assert r == {"status": "Accepted"}
        await migrate(csms201, url, 2)
        await other.expect("BootNotification", timeout=60, since=0)
        assert other.auth_headers == [basic(PASSWORD)]
        assert await get_variable(other, "OCPPCommCtrlr", "ActiveNetworkProfile") == "1"
        assert not other.schema_problems, other.schema_problems
    finally:
        await other.close()


async def test_TC_B_47_CS_migrate_fallback_new_csms_root_new_csms(csms201, make_station201, tmp_path):
    """As TC_B_50, but the new CSMS shows a certificate the station does not trust: after
    NetworkProfileConnectionAttempts (1) the station is back with the old CSMS, and reports
    InvalidCsmsCertificate there."""
    old, new = make_pki(tmp_path / "old"), make_pki(tmp_path / "new", ca_name="New CSMS Root")
    await tls_station(csms201, make_station201, tmp_path, old, profile=2,
                      variables=[var("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "1")])
    other = ScriptedCsms(version="2.0.1")
    url = await other.start(ssl=server_context(new))
    try:
        untrusted, _ = make_ca("Some Other Root")
        assert (await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate",
                                                          "certificate": pem(untrusted)}))["status"] == "Accepted"
        mark = await migrate(csms201, url, 2)
        await csms201.expect("BootNotification", timeout=120, since=mark)
        assert other.connections == 0
        assert await get_variable(csms201, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"
        await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidCsmsCertificate",
                             timeout=20, since=mark)
    finally:
        await other.close()


async def test_a_new_priority_applies_from_the_next_start_not_at_a_reconnect(csms201, make_station201, tmp_path):
    """After SetNetworkProfile and NetworkConfigurationPriority but before the Reset, a lost
    connection comes back on the slot in use; the new profile's security profile is not
    confirmed by it."""
    pki = make_pki(tmp_path / "pki")
    await plain_station(csms201, make_station201, tmp_path)
    other = ScriptedCsms(version="2.0.1")
    url = await other.start(ssl=server_context(pki))
    try:
        await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pki.ca_file.read_text()})
        assert (await csms201.call("SetNetworkProfile", network_profile(url, 2)))["status"] == "Accepted"
        assert (await set_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0"))["attributeStatus"] == "Accepted"
        await csms201.drop_connection()
        await asyncio.wait_for(csms201.connected.wait(), 60)
        assert other.connections == 0
        assert await get_variable(csms201, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"
        assert await get_variable(csms201, "SecurityCtrlr", "SecurityProfile") == "1"
        mark = other.mark()
        assert (await csms201.call("Reset", {"type": "Immediate"}))["status"] == "Accepted"
        await other.expect("BootNotification", timeout=60, since=mark)
        assert await get_variable(other, "SecurityCtrlr", "SecurityProfile") == "2"
    finally:
        await other.close()


async def test_reconnection_back_off_follows_the_retry_back_off_variables(csms201, make_station201, tmp_path):
    """OCPP-J reconnecting: RetryBackOffWaitMinimum (+ at most RetryBackOffRandomRange), doubled
    RetryBackOffRepeatTimes times, then the last wait again."""
    await plain_station(csms201, make_station201, tmp_path, variables=[
        var("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "20"), var("OCPPCommCtrlr", "RetryBackOffRandomRange", "0"),
        var("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "2")])
    csms201.reject_handshake = 4
    loop = asyncio.get_running_loop()
    dropped = loop.time()
    await csms201.drop_connection()
    await asyncio.wait_for(csms201.connected.wait(), 600)
    times = csms201.handshake_times[-5:]
    waits = [round(b - a) for a, b in zip([dropped, *times], times, strict=False)]
    assert waits == [20, 40, 80, 80, 80], waits
