"""OCTT OCPP 1.6J Core cases (sections 2.1-2.9) performed against the real station (in process, on
virtual time); the non-happy sections 2.10-2.16 are in test_octt16_non_happy.py."""

from __future__ import annotations

from tests.integration.harness import start_session


# -- 2.1 boot ---------------------------------------------------------------------------------
async def test_TC_002_cold_boot_pending(csms, make_station):
    """Boot Pending: the station retries after the interval, sends nothing else meanwhile, answers
    CSMS configuration requests, and reports its connectors once Accepted."""
    csms.boot_status, csms.boot_interval = "Pending", 2
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    conf = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert conf["configurationKey"][0]["key"] == "HeartbeatInterval"
    csms.boot_status = "Accepted"
    await csms.expect("BootNotification", timeout=5)
    assert [r.action for r in csms.received][:2] == ["BootNotification", "BootNotification"]
    await csms.expect_status(0, "Available")
    await csms.expect_status(1, "Available")


async def test_boot_rejected_retries_and_stays_silent(csms, make_station):
    csms.boot_status, csms.boot_interval = "Rejected", 1
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect("BootNotification", timeout=5)
    assert {r.action for r in csms.received} == {"BootNotification"}
    csms.boot_status = "Accepted"
    await csms.expect("BootNotification", timeout=5)
    await csms.expect_status(1, "Available")


# -- 2.2 sessions -----------------------------------------------------------------------------
async def test_TC_004_1_identification_first(csms, booted):
    sp = await booted()
    await sp.swipe("TAG1")
    await csms.expect("Authorize")
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG1"
    await csms.expect_status(1, "Charging")


async def test_TC_004_2_identification_first_connection_timeout(csms, booted):
    sp = await booted(ocpp_config={"ConnectionTimeOut": "2"})
    await sp.swipe("TAG1")
    await csms.expect_status(1, "Preparing")
    await csms.expect_status(1, "Available", timeout=6)
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await csms.no_call("StartTransaction", 1.0)


# -- 2.3 stop -----------------------------------------------------------------------------------
async def test_TC_068_stop_same_id_tag(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    stop = await csms.expect("StopTransaction")
    assert stop["idTag"] == "TAG1" and stop["reason"] == "Local"
    await csms.expect_status(1, "Finishing")


async def test_TC_069_stop_with_same_parent_id_tag(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Accepted", "parentIdTag": "PARENT"}}
    csms.responders["StartTransaction"] = lambda p: {
        "transactionId": 7, "idTagInfo": {"status": "Accepted", "parentIdTag": "PARENT"}}
    sp = await booted()
    await start_session(csms, sp, "TAG1")
    await sp.swipe("TAG2")
    auth = await csms.expect("Authorize")
    assert auth["idTag"] == "TAG2"
    stop = await csms.expect("StopTransaction")
    assert stop["idTag"] == "TAG2" and stop["transactionId"] == 7


async def test_TC_005_1_ev_side_disconnect_stop_and_unlock(csms, booted):
    sp = await booted(ocpp_config={"StopTransactionOnEVSideDisconnect": "true",
                                   "UnlockConnectorOnEVSideDisconnect": "true"})
    await start_session(csms, sp)
    await sp.unplug()
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "EVDisconnected"
    await csms.expect_status(1, "Available")


async def test_TC_005_2_ev_side_disconnect_stop_no_unlock(csms, booted):
    sp = await booted(ocpp_config={"StopTransactionOnEVSideDisconnect": "true",
                                   "UnlockConnectorOnEVSideDisconnect": "false"})
    await start_session(csms, sp)
    await sp.unplug()
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "EVDisconnected"
    await csms.expect_status(1, "Available")
    # the connector stays locked until told: UnlockConnector releases it
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"


async def test_TC_005_3_ev_side_disconnect_transaction_continues(csms, booted):
    sp = await booted(ocpp_config={"StopTransactionOnEVSideDisconnect": "false",
                                   "UnlockConnectorOnEVSideDisconnect": "false"})
    await start_session(csms, sp)
    await sp.unplug()
    await csms.expect_status(1, "SuspendedEV")
    await csms.no_call("StopTransaction", 1.0)
    await sp.plug()
    await csms.expect_status(1, "Charging")
    await sp.swipe("TAG1")
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "Local"


# -- 2.4 cache --------------------------------------------------------------------------------
async def test_TC_007_cached_id(csms, booted):
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "true"})
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await sp.unplug()
    await csms.expect_status(1, "Available")
    n_auth = len(csms.calls("Authorize"))
    await sp.plug()
    await sp.swipe("TAG1")
    await csms.expect("StartTransaction")
    assert len(csms.calls("Authorize")) == n_auth, "a cached id must start without Authorize"


async def test_TC_061_clear_cache(csms, booted):
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "true"})
    await sp.swipe("TAG1")
    await csms.expect("Authorize")
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")  # cancels the waiting authorization
    await csms.expect_status(1, "Available")
    assert (await csms.call("ClearCache", {}))["status"] == "Accepted"
    await sp.swipe("TAG1")
    assert (await csms.expect("Authorize"))["idTag"] == "TAG1"


# -- 2.5 remote -------------------------------------------------------------------------------
async def test_TC_010_remote_start_cable_plugged_first(csms, booted):
    sp = await booted()
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    r = await csms.call("RemoteStartTransaction", {"idTag": "RTAG", "connectorId": 1})
    assert r["status"] == "Accepted"
    await csms.expect("Authorize")  # AuthorizeRemoteTxRequests defaults to true
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "RTAG"
    await csms.expect_status(1, "Charging")


async def test_TC_011_1_remote_start_first(csms, booted):
    sp = await booted(ocpp_config={"AuthorizeRemoteTxRequests": "false"})
    r = await csms.call("RemoteStartTransaction", {"idTag": "RTAG"})
    assert r["status"] == "Accepted"
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    await csms.expect("StartTransaction")
    assert not csms.calls("Authorize")
    await csms.expect_status(1, "Charging")


async def test_TC_011_2_remote_start_time_out(csms, booted):
    await booted(ocpp_config={"ConnectionTimeOut": "2"})
    assert (await csms.call("RemoteStartTransaction", {"idTag": "RTAG", "connectorId": 1}))["status"] == "Accepted"
    await csms.expect_status(1, "Preparing")
    await csms.expect_status(1, "Available", timeout=6)
    assert not csms.calls("StartTransaction")


async def test_TC_012_remote_stop(csms, booted):
    sp = await booted()
    start_tx = await start_session(csms, sp)
    assert start_tx
    r = await csms.call("RemoteStopTransaction", {"transactionId": 1})
    assert r["status"] == "Accepted"
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "Remote" and stop["transactionId"] == 1
    await csms.expect_status(1, "Finishing")


async def test_remote_start_with_tx_profile(csms, booted):
    sp = await booted()
    await sp.plug()
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Relative",
               "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}}
    r = await csms.call("RemoteStartTransaction", {"idTag": "RTAG", "connectorId": 1, "chargingProfile": profile})
    assert r["status"] == "Accepted"
    await csms.expect("StartTransaction")


# -- 2.6 reset --------------------------------------------------------------------------------
async def test_TC_013_hard_reset_without_transaction(csms, booted):
    await booted()
    assert (await csms.call("Reset", {"type": "Hard"}))["status"] == "Accepted"
    await csms.expect("BootNotification", timeout=15)
    assert not csms.calls("StopTransaction")


async def test_TC_014_soft_reset_without_transaction(csms, booted):
    await booted()
    assert (await csms.call("Reset", {"type": "Soft"}))["status"] == "Accepted"
    await csms.expect("BootNotification", timeout=15)
    assert not csms.calls("StopTransaction")


async def test_TC_015_hard_reset_with_transaction(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    assert (await csms.call("Reset", {"type": "Hard"}))["status"] == "Accepted"
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "HardReset"
    await csms.expect("BootNotification", timeout=15)


async def test_TC_016_soft_reset_with_transaction(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    assert (await csms.call("Reset", {"type": "Soft"}))["status"] == "Accepted"
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "SoftReset"
    await csms.expect("BootNotification", timeout=15)
    # the car is still plugged after the reset: the connector is not Available
    st = await csms.expect("StatusNotification", lambda p: p["connectorId"] == 1)
    assert st["status"] in ("Preparing", "Finishing")


# -- 2.7 unlock -------------------------------------------------------------------------------
async def test_TC_017_1_unlock_without_session(csms, booted):
    await booted()
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"


async def test_TC_017_2_unlock_fixed_cable(csms, booted, tmp_path):
    cfg = tmp_path / "fixed.toml"
    cfg.write_text("[[evse]]\nid = 1\nfixed_cable = true\n")
    await booted(config=str(cfg))
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "NotSupported"


async def test_TC_018_1_unlock_with_session(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    r = await csms.call("UnlockConnector", {"connectorId": 1})
    assert r["status"] == "Unlocked"
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "UnlockCommand"


async def test_TC_018_2_unlock_fixed_cable_with_session(csms, booted, tmp_path):
    cfg = tmp_path / "fixed.toml"
    cfg.write_text("[[evse]]\nid = 1\nfixed_cable = true\n")
    sp = await booted(config=str(cfg))
    await start_session(csms, sp)
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "NotSupported"
    await csms.no_call("StopTransaction", 0.5)


# -- 2.8 configuration ------------------------------------------------------------------------
async def test_TC_019_retrieve_configuration(csms, booted):
    await booted()
    allkeys = await csms.call("GetConfiguration", {})
    names = {k["key"] for k in allkeys["configurationKey"]}
    for key in ("HeartbeatInterval", "ConnectionTimeOut", "MeterValueSampleInterval", "NumberOfConnectors",
                "SupportedFeatureProfiles", "StopTransactionOnEVSideDisconnect", "TransactionMessageAttempts"):
        assert key in names
    assert "AuthorizationKey" not in names
    some = await csms.call("GetConfiguration", {"key": ["NumberOfConnectors", "NoSuchKey"]})
    assert some["configurationKey"] == [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}]
    assert some["unknownKey"] == ["NoSuchKey"]


async def test_TC_021_change_configuration(csms, booted):
    sp = await booted()
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "17"}))["status"] == "Accepted"
    got = await csms.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert got["configurationKey"][0]["value"] == "17"
    sp.stop()
    await csms.disconnected.wait()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    got = await csms.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert got["configurationKey"][0]["value"] == "17"


# -- 2.9 meter values -------------------------------------------------------------------------
async def test_TC_070_sampled_meter_values(csms, booted):
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "1",
                                   "MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import,Voltage"})
    await start_session(csms, sp)
    mv1 = await csms.expect("MeterValues", timeout=5)
    mv2 = await csms.expect("MeterValues", timeout=5)
    for mv in (mv1, mv2):
        assert mv["transactionId"] == 1 and mv["connectorId"] == 1
        svs = mv["meterValue"][0]["sampledValue"]
        assert all(s["context"] == "Sample.Periodic" for s in svs)
        assert {s.get("phase") for s in svs if s["measurand"] == "Current.Import"} == {"L1", "L2", "L3"}
        assert {s["unit"] for s in svs if s["measurand"] == "Voltage"} == {"V"}

    def energy(mv):
        return float(next(s["value"] for s in mv["meterValue"][0]["sampledValue"]
                          if s["measurand"] == "Energy.Active.Import.Register"))

    assert energy(mv2) > energy(mv1)


async def test_TC_071_clock_aligned_meter_values(csms, booted):
    sp = await booted(ocpp_config={"ClockAlignedDataInterval": "2", "StopTxnAlignedData": "Energy.Active.Import.Register"})
    mv = await csms.expect("MeterValues", timeout=5)
    assert "transactionId" not in mv
    assert mv["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"
    await start_session(csms, sp)
    mv = await csms.expect("MeterValues", lambda p: "transactionId" in p, timeout=5)
    assert mv["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"
    await sp.swipe("TAG1")
    stop = await csms.expect("StopTransaction")
    assert any(sv["context"] == "Sample.Clock" for mv in stop["transactionData"] for sv in mv["sampledValue"])


# -- 2.10 - 2.16 non-happy flows: tests/integration/test_octt16_non_happy.py (one place per case) --


async def test_data_transfer_from_the_station_16(csms, booted):
    """DataTransfer from the station (1.6: data is a string): the local API sends it."""
    sp = await booted()
    got = await sp.api("POST", "/api/data-transfer", {"vendor_id": "com.example", "data": "hello"})
    assert got["status"] == "Accepted"
    assert (await csms.expect("DataTransfer")) == {"vendorId": "com.example", "data": "hello"}
    bad = await sp.api("POST", "/api/data-transfer", {"vendor_id": "com.example", "data": {"x": 1}}, expect=400)
    assert "string" in bad["error"]
