"""OCPP 2.0.1 block N monitoring over a real websocket: SetVariableMonitoring, the events the
monitors raise (NotifyEvent), GetMonitoringReport, ClearVariableMonitoring, SetMonitoringLevel /
SetMonitoringBase, and the station's own problems as HardWiredNotification events."""

from __future__ import annotations

from tests.conftest import var


def monitor(component: str, variable: str, type_: str, value: float, severity: int = 5, **extra) -> dict:
    return {"component": {"name": component}, "variable": {"name": variable}, "type": type_, "value": value,
            "severity": severity, **extra}


async def test_TC_N_01_CS_set_variable_monitoring_threshold_raises_and_clears(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    res = r["setMonitoringResult"][0]
    assert res["status"] == "Accepted" and res["id"] >= 1
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "150")]})
    ev = (await csms201.expect("NotifyEvent"))["eventData"][0]
    assert ev["trigger"] == "Alerting" and ev["actualValue"] == "150" and ev["variableMonitoringId"] == res["id"]
    assert ev["eventNotificationType"] == "CustomMonitor" and "cleared" not in ev
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "50")]})
    ev = (await csms201.expect("NotifyEvent"))["eventData"][0]
    assert ev["cleared"] is True


async def test_TC_N_02_CS_delta_monitor_on_option_list(csms201, booted201):
    sp = await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        {"component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
         "variable": {"name": "AvailabilityState"}, "type": "Delta", "value": 1, "severity": 5}]})
    assert r["setMonitoringResult"][0]["status"] == "Accepted"
    await sp.plug()
    ev = (await csms201.expect("NotifyEvent"))["eventData"][0]
    assert ev["trigger"] == "Delta" and ev["actualValue"] == "Occupied"


async def test_TC_N_03_CS_unknown_and_unsupported(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("NoSuchCtrlr", "X", "Delta", 1), monitor("AuthCtrlr", "NoSuch", "Delta", 1),
        monitor("TxCtrlr", "TxStartPoint", "UpperThreshold", 1)]})
    assert [x["status"] for x in r["setMonitoringResult"]] == ["UnknownComponent", "UnknownVariable",
                                                                "UnsupportedMonitorType"]


async def test_TC_N_05_CS_periodic_monitor(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "Periodic", 30)]})
    ev = (await csms201.expect("NotifyEvent", timeout=40))["eventData"][0]
    assert ev["trigger"] == "Periodic" and ev["actualValue"] == "300"


async def test_TC_N_08_CS_monitoring_report_and_clear(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100),
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "Delta", 10)]})
    ids = [x["id"] for x in r["setMonitoringResult"]]
    got = await csms201.call("GetMonitoringReport", {"requestId": 3, "monitoringCriteria": ["ThresholdMonitoring"]})
    assert got["status"] == "Accepted"
    rep = await csms201.expect("NotifyMonitoringReport")
    assert rep["requestId"] == 3 and [m["variable"]["name"] for m in rep["monitor"]] == ["OfflineThreshold"]
    cleared = await csms201.call("ClearVariableMonitoring", {"id": [ids[0], 999]})
    assert [x["status"] for x in cleared["clearMonitoringResult"]] == ["Accepted", "NotFound"]
    got = await csms201.call("GetMonitoringReport", {"requestId": 4, "monitoringCriteria": ["ThresholdMonitoring"]})
    assert got["status"] == "EmptyResultSet"


async def test_TC_N_10_CS_monitoring_level_filters_events(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100, severity=8)]})
    assert (await csms201.call("SetMonitoringLevel", {"severity": 4}))["status"] == "Accepted"
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "150")]})
    await csms201.no_call("NotifyEvent", within=3)


async def test_TC_N_13_CS_monitoring_base_factory_default_removes_custom(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    assert (await csms201.call("SetMonitoringBase", {"monitoringBase": "FactoryDefault"}))["status"] == "Accepted"
    assert (await csms201.call("GetMonitoringReport", {"requestId": 9}))["status"] == "EmptyResultSet"


async def test_monitors_survive_a_restart(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15, since=csms201.mark())
    assert (await csms201.call("GetMonitoringReport", {"requestId": 1}))["status"] == "Accepted"


async def test_connector_fault_is_a_hardwired_notify_event(csms201, booted201):
    sp = await booted201()
    await sp.fault("ConnectorLockFailure", True)
    ev = (await csms201.expect("NotifyEvent", lambda p: p["eventData"][0]["component"]["name"] == "Connector"))
    data = ev["eventData"][0]
    assert data["eventNotificationType"] == "HardWiredNotification"
    assert data["variable"]["name"] == "Problem" and data["actualValue"] == "true"
    assert data["techCode"]
    await sp.fault("ConnectorLockFailure", False)
    ev = await csms201.expect("NotifyEvent", lambda p: p["eventData"][0]["component"]["name"] == "Connector")
    assert ev["eventData"][0]["cleared"] is True
