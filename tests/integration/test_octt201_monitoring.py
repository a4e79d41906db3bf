"""OCPP 2.0.1 block N monitoring over a real websocket: SetVariableMonitoring, the events the
monitors raise (NotifyEvent), GetMonitoringReport, ClearVariableMonitoring, SetMonitoringLevel /
SetMonitoringBase, and the station's own problems as HardWiredNotification events."""

from __future__ import annotations

from tests.conftest import var


def monitor(component: str, variable: str, type_: str, value: float, severity: int = 5, **extra) -> dict:
    return {"component": {"name": component}, "variable": {"name": variable}, "type": type_, "value": value,
            "severity": severity, **extra}


async def test_TC_N_08_TC_N_20_CS_threshold_monitor_raises_and_clears(csms201, booted201):
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


async def test_TC_N_56_CS_delta_monitor_not_numeric(csms201, booted201):
    sp = await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        {"component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
         "variable": {"name": "AvailabilityState"}, "type": "Delta", "value": 1, "severity": 5}]})
    assert r["setMonitoringResult"][0]["status"] == "Accepted"
    await sp.plug()
    ev = (await csms201.expect("NotifyEvent"))["eventData"][0]
    assert ev["trigger"] == "Delta" and ev["actualValue"] == "Occupied"


async def test_TC_N_11_TC_N_37_TC_N_38_CS_unknown_component_variable_unsupported_type(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("NoSuchCtrlr", "X", "Delta", 1), monitor("AuthCtrlr", "NoSuch", "Delta", 1),
        monitor("TxCtrlr", "TxStartPoint", "UpperThreshold", 1)]})
    assert [x["status"] for x in r["setMonitoringResult"]] == ["UnknownComponent", "UnknownVariable",
                                                                "UnsupportedMonitorType"]


async def test_TC_N_24_CS_periodic_event(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "Periodic", 30)]})
    ev = (await csms201.expect("NotifyEvent", timeout=40))["eventData"][0]
    assert ev["trigger"] == "Periodic" and ev["actualValue"] == "300"


async def test_TC_N_01_TC_N_18_TC_N_19_CS_report_by_criteria_and_clear(csms201, booted201):
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


async def test_TC_N_16_CS_monitoring_level_filters_events(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100, severity=8)]})
    assert (await csms201.call("SetMonitoringLevel", {"severity": 4}))["status"] == "Accepted"
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "150")]})
    await csms201.no_call("NotifyEvent", within=3)


async def test_TC_N_06_CS_monitoring_base_removes_custom_monitors(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    assert (await csms201.call("SetMonitoringBase", {"monitoringBase": "HardWiredOnly"}))["status"] == "Accepted"
    assert (await csms201.call("GetMonitoringReport", {"requestId": 9}))["status"] == "EmptyResultSet"


async def test_monitors_survive_a_restart(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15, since=csms201.mark())
    assert (await csms201.call("GetMonitoringReport", {"requestId": 1}))["status"] == "Accepted"


async def test_TC_N_21_CS_connector_fault_is_a_hardwired_event(csms201, booted201):
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


async def test_TC_N_05_CS_set_monitoring_base_success(csms201, booted201):
    await booted201()
    for base in ("All", "FactoryDefault", "HardWiredOnly"):
        assert (await csms201.call("SetMonitoringBase", {"monitoringBase": base}))["status"] == "Accepted"
    got = await csms201.call("GetVariables", {"getVariableData": [
        {"component": {"name": "MonitoringCtrlr"}, "variable": {"name": "ActiveMonitoringBase"}}]})
    assert got["getVariableResult"][0]["attributeValue"] == "HardWiredOnly"


async def test_TC_N_09_TC_N_10_CS_several_elements_and_monitors_on_one_variable(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100, severity=5),
        monitor("OCPPCommCtrlr", "OfflineThreshold", "LowerThreshold", 10, severity=5),
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "Delta", 10, severity=4)]})
    results = r["setMonitoringResult"]
    assert [x["status"] for x in results] == ["Accepted"] * 3
    assert len({x["id"] for x in results}) == 3


async def test_TC_N_12_TC_N_13_TC_N_43_CS_values_out_of_range(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100),
        monitor("OCPPCommCtrlr", "OfflineThreshold", "Delta", 10_000_000),
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "UpperThreshold", -5)]})
    statuses = [x["status"] for x in r["setMonitoringResult"]]
    assert statuses == ["Accepted", "Rejected", "Rejected"]


async def test_TC_N_15_CS_duplicate_type_and_severity(csms201, booted201):
    await booted201()
    m = monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [m]})
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [dict(m, value=120)]})
    assert r["setMonitoringResult"][0]["status"] == "Duplicate"


async def test_TC_N_17_CS_monitoring_level_out_of_range(csms201, booted201):
    await booted201()
    assert (await csms201.call("SetMonitoringLevel", {"severity": 10}))["status"] == "Rejected"


async def test_TC_N_40_TC_N_51_CS_replace_variable_monitor(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    mid = r["setMonitoringResult"][0]["id"]
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 200, id=mid)]})
    assert r["setMonitoringResult"][0]["status"] == "Accepted" and r["setMonitoringResult"][0]["id"] == mid
    await csms201.call("GetMonitoringReport", {"requestId": 2})
    rep = await csms201.expect("NotifyMonitoringReport")
    assert [(m["id"], m["value"]) for e in rep["monitor"] for m in e["variableMonitoring"]] == [(mid, 200)]


async def test_TC_N_02_TC_N_47_CS_report_by_component_variable_and_all(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100),
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "Delta", 10)]})
    await csms201.call("GetMonitoringReport", {"requestId": 5, "componentVariable": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
    rep = await csms201.expect("NotifyMonitoringReport")
    assert [e["variable"]["name"] for e in rep["monitor"]] == ["HeartbeatInterval"]
    await csms201.call("GetMonitoringReport", {"requestId": 6})
    rep = await csms201.expect("NotifyMonitoringReport", lambda p: p["requestId"] == 6)
    assert {e["variable"]["name"] for e in rep["monitor"]} == {"HeartbeatInterval", "OfflineThreshold"}


async def test_TC_N_45_TC_N_61_CS_delta_numeric_exceeded(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "Delta", 20)]})
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "70")]})
    await csms201.no_call("NotifyEvent", within=2)  # 60 -> 70: below the delta
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "90")]})
    ev = (await csms201.expect("NotifyEvent"))["eventData"][0]
    assert ev["trigger"] == "Delta" and ev["actualValue"] == "90"


async def test_TC_N_22_TC_N_23_CS_offline_queuing_by_severity(csms201, booted201):
    sp = await booted201(variables=[var("MonitoringCtrlr", "OfflineQueuingSeverity", "4")])
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100, severity=3),
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "UpperThreshold", 400, severity=7)]})
    await sp.link(False)
    await csms201.disconnected.wait()
    # the station's own values change while off line (a field engineer's config file would do too)
    sp.rt.adapter.dm.set_variables([var("OCPPCommCtrlr", "OfflineThreshold", "150"),
                                    var("OCPPCommCtrlr", "HeartbeatInterval", "500")], source="test")
    await sp.link(True)
    ev = await csms201.expect("NotifyEvent", timeout=30)
    assert [d["variable"]["name"] for d in ev["eventData"]] == ["OfflineThreshold"]  # severity 3 <= 4 kept
    await csms201.no_call("NotifyEvent", within=3)  # severity 7 was not kept


async def test_TC_N_53_CS_monitor_alerts_after_reboot(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15, since=csms201.mark())
    await sp.wait_api()
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "150")]})
    ev = (await csms201.expect("NotifyEvent"))["eventData"][0]
    assert ev["actualValue"] == "150"


async def test_TC_N_03_CS_report_with_criteria_and_component_variable(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100),
        monitor("OCPPCommCtrlr", "OfflineThreshold", "Delta", 10),
        monitor("OCPPCommCtrlr", "HeartbeatInterval", "UpperThreshold", 500)]})
    await csms201.call("GetMonitoringReport", {"requestId": 8, "monitoringCriteria": ["DeltaMonitoring"],
                                               "componentVariable": [{"component": {"name": "OCPPCommCtrlr"},
                                                                      "variable": {"name": "OfflineThreshold"}}]})
    rep = await csms201.expect("NotifyMonitoringReport")
    got = [(e["variable"]["name"], m["type"]) for e in rep["monitor"] for m in e["variableMonitoring"]]
    assert got == [("OfflineThreshold", "Delta")]


async def test_TC_N_39_CS_component_variable_do_not_correspond(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("AuthCtrlr", "HeartbeatInterval", "Delta", 1)]})
    assert r["setMonitoringResult"][0]["status"] == "UnknownVariable"


async def test_TC_N_41_CS_return_to_factory_default(csms201, booted201):
    await booted201()
    await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    assert (await csms201.call("SetMonitoringBase", {"monitoringBase": "FactoryDefault"}))["status"] == "Accepted"
    assert (await csms201.call("GetMonitoringReport", {"requestId": 1}))["status"] == "EmptyResultSet"


async def test_TC_N_48_CS_monitoring_a_write_only_variable_is_rejected(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("SecurityCtrlr", "BasicAuthPassword", "Delta", 1)]})
    assert r["setMonitoringResult"][0]["status"] == "Rejected"


async def test_TC_N_52_CS_removed_monitor_raises_nothing(csms201, booted201):
    await booted201()
    r = await csms201.call("SetVariableMonitoring", {"setMonitoringData": [
        monitor("OCPPCommCtrlr", "OfflineThreshold", "UpperThreshold", 100)]})
    mid = r["setMonitoringResult"][0]["id"]
    cleared = await csms201.call("ClearVariableMonitoring", {"id": [mid]})
    assert cleared["clearMonitoringResult"][0]["status"] == "Accepted"
    await csms201.call("SetVariables", {"setVariableData": [var("OCPPCommCtrlr", "OfflineThreshold", "150")]})
    await csms201.no_call("NotifyEvent", within=3)
