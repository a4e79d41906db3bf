"""Smoke: the station boots, reports status, and runs a whole session over a real websocket (in process;
once also as a process)."""

from __future__ import annotations

import pytest


async def test_TC_001_cold_boot(csms, booted):
    sp = await booted()
    boot = csms.calls("BootNotification")[0]
    assert boot["chargePointVendor"] and boot["chargePointModel"]
    assert csms.paths[0] == "/ocpp/CS001"
    assert csms.subprotocols[0] == "ocpp1.6"
    st = await sp.status()
    assert st["connected"] and st["registration"] == "Accepted"
    assert st["evses"][0]["connectors"][0]["status"] == "Available"


async def test_TC_003_plugin_first(csms, booted):
    sp = await booted()
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")
    auth = await csms.expect("Authorize")
    assert auth["idTag"] == "TAG1"
    start = await csms.expect("StartTransaction")
    assert start["connectorId"] == 1 and start["idTag"] == "TAG1" and start["meterStart"] >= 0
    await csms.expect_status(1, "Charging")
    await sp.swipe("TAG1")
    stop = await csms.expect("StopTransaction")
    assert stop["transactionId"] == 1 and stop["reason"] == "Local" and stop["meterStop"] >= start["meterStart"]
    await csms.expect_status(1, "Finishing")
    await sp.unplug()
    await csms.expect_status(1, "Available")


@pytest.mark.process
async def test_TC_003_plugin_first_as_a_process(csms, booted):
    """The same session against ``python -m station run --sim`` as its own process: the command line,
    the local API server of a real process, and its clean stop (SIGTERM) at teardown."""
    await test_TC_003_plugin_first(csms, booted)
