"""OCPP 2.0.1 device model (station/ocpp201/device_model.py) on an in-memory SQLite store:
the variables Part 2 requires (TC_B_53), GetVariables / SetVariables answered element by element
(TC_B_06..TC_B_11, TC_B_32..TC_B_39), base and custom reports (TC_B_12..TC_B_18, TC_B_54..TC_B_56),
persistence of only the changed values, subscribers, ``--ocpp-config``, shared definitions and
the memory one station costs."""

from __future__ import annotations

import dataclasses
import logging
import tracemalloc
from pathlib import Path

import pytest

from station import ocpp_schema
from station.ocpp201.device_model import (
    NS,
    DeviceModel,
    Variable,
    definitions,
    markdown,
    report_pages,
)
from station.store import MemoryStore

LAYOUT = {1: [1], 2: [1, 2]}
IDENTITY = {"vendor": "Acme", "model": "Wallbox 22", "serial": "SN1", "firmware_version": "1.0", "id": "CS001"}

# Part 2 "Referenced Components and Variables" required ones, as (component, variable, instance)
REQUIRED = [
    ("OCPPCommCtrlr", n, i) for n, i in [
        ("FileTransferProtocols", None), ("MessageTimeout", "Default"),
        ("MessageAttempts", "TransactionEvent"), ("MessageAttemptInterval", "TransactionEvent"),
        ("NetworkConfigurationPriority", None), ("NetworkProfileConnectionAttempts", None),
        ("OfflineThreshold", None), ("ResetRetries", None), ("UnlockOnEVSideDisconnect", None),
        ("WebSocketPingInterval", None), ("RetryBackOffRandomRange", None), ("RetryBackOffRepeatTimes", None),
        ("RetryBackOffWaitMinimum", None)]
] + [
    ("SecurityCtrlr", n, None) for n in ["SecurityProfile", "OrganizationName", "Identity", "BasicAuthPassword",
                                         "CertificateEntries", "AdditionalRootCertificateCheck"]
] + [
    ("AuthCtrlr", n, None) for n in ["Enabled", "AuthorizeRemoteStart", "LocalAuthorizeOffline", "LocalPreAuthorize"]
] + [
    ("LocalAuthListCtrlr", n, None) for n in ["Enabled", "Entries", "ItemsPerMessage", "BytesPerMessage"]
] + [
    ("TxCtrlr", n, None) for n in ["EVConnectionTimeOut", "StopTxOnEVSideDisconnect", "StopTxOnInvalidId",
                                   "TxStartPoint", "TxStopPoint"]
] + [
    ("SampledDataCtrlr", n, None) for n in ["TxEndedMeasurands", "TxEndedInterval", "TxStartedMeasurands",
                                            "TxUpdatedMeasurands", "TxUpdatedInterval"]
] + [
    ("AlignedDataCtrlr", n, None) for n in ["Measurands", "Interval", "TxEndedMeasurands", "TxEndedInterval"]
] + [
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"), ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetReport"), ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"),
    ("DeviceDataCtrlr", "BytesPerMessage", "SetVariables"),
    ("ClockCtrlr", "DateTime", None), ("ClockCtrlr", "TimeSource", None),
    ("SmartChargingCtrlr", "EntriesChargingProfiles", None), ("SmartChargingCtrlr", "LimitChangeSignificance", None),
    ("SmartChargingCtrlr", "PeriodsPerSchedule", None), ("SmartChargingCtrlr", "ProfileStackLevel", None),
    ("SmartChargingCtrlr", "RateUnit", None),
    ("ChargingStation", "AvailabilityState", None), ("ChargingStation", "Available", None),
    ("ChargingStation", "Model", None), ("ChargingStation", "VendorName", None),
    ("ChargingStation", "SupplyPhases", None),
    ("EVSE", "AvailabilityState", None), ("EVSE", "Available", None), ("EVSE", "Power", None),
    ("EVSE", "SupplyPhases", None),
    ("Connector", "AvailabilityState", None), ("Connector", "Available", None), ("Connector", "ConnectorType", None),
    ("Connector", "SupplyPhases", None),
]
# the others the issue names for a Core + Advanced Security station
ALSO = [
    ("OCPPCommCtrlr", "HeartbeatInterval"), ("OCPPCommCtrlr", "QueueAllMessages"),
    ("SecurityCtrlr", "MaxCertificateChainSize"), ("SecurityCtrlr", "CertSigningWaitMinimum"),
    ("SecurityCtrlr", "CertSigningRepeatTimes"), ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    ("AuthCtrlr", "DisableRemoteAuthorization"), ("AuthCtrlr", "MasterPassGroupId"),
    ("AuthCtrlr", "AdditionalInfoItemsPerMessage"),
    *[("AuthCacheCtrlr", n) for n in ["Enabled", "Available", "LifeTime", "Storage", "Policy", "DisablePostAuthorize"]],
    ("LocalAuthListCtrlr", "Available"), ("LocalAuthListCtrlr", "Storage"), ("LocalAuthListCtrlr", "DisablePostAuthorize"),
    ("TxCtrlr", "MaxEnergyOnInvalidId"), ("SampledDataCtrlr", "Enabled"), ("SampledDataCtrlr", "SignReadings"),
    ("SampledDataCtrlr", "RegisterValuesWithoutPhases"), ("AlignedDataCtrlr", "Enabled"),
    ("AlignedDataCtrlr", "SendDuringIdle"), ("DeviceDataCtrlr", "ValueSize"),
    ("DeviceDataCtrlr", "ConfigurationValueSize"), ("DeviceDataCtrlr", "ReportingValueSize"),
    ("ReservationCtrlr", "Enabled"), ("ReservationCtrlr", "Available"), ("ReservationCtrlr", "NonEvseSpecific"),
    *[("SmartChargingCtrlr", n) for n in ["Enabled", "Available", "ExternalControlSignalsEnabled",
                                          "NotifyChargingLimitWithSchedules", "Phases3to1"]],
]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def dm(store: MemoryStore) -> DeviceModel:
    return DeviceModel(store, LAYOUT, IDENTITY, logging.getLogger("test.dm"))


def comp(name: str, evse: int | None = None, connector: int | None = None, instance: str | None = None) -> dict:
    c: dict = {"name": name}
    if instance:
        c["instance"] = instance
    if evse is not None:
        c["evse"] = {"id": evse} if connector is None else {"id": evse, "connectorId": connector}
    return c


def var(name: str, instance: str | None = None) -> dict:
    return {"name": name, **({"instance": instance} if instance else {})}


def get(dm: DeviceModel, component: dict, variable: dict, attr: str | None = None) -> dict:
    item = {"component": component, "variable": variable, **({"attributeType": attr} if attr else {})}
    [result] = dm.get_variables([item])
    ocpp_schema.validate("2.0.1", "GetVariables", {"getVariableResult": [result]}, result=True)
    return result


def set1(dm: DeviceModel, component: dict, variable: dict, value: str, attr: str | None = None) -> dict:
    item = {"component": component, "variable": variable, "attributeValue": value,
            **({"attributeType": attr} if attr else {})}
    [result] = dm.set_variables([item])
    ocpp_schema.validate("2.0.1", "SetVariables", {"setVariableResult": [result]}, result=True)
    return result


def listed(report: list[dict]) -> set[tuple]:
    """(component, evse id, connector id, variable, variable instance) of every reportData entry."""
    return {(r["component"]["name"], r["component"].get("evse", {}).get("id"),
             r["component"].get("evse", {}).get("connectorId"), r["variable"]["name"], r["variable"].get("instance"))
            for r in report}


# -- definitions -------------------------------------------------------------------------------

def test_TC_B_53_CS_every_required_variable_is_defined_and_marked_required() -> None:
    d = definitions()
    for c, v, i in REQUIRED:
        found = d.index.get((c.lower(), v.lower(), i.lower() if i else None))
        assert found is not None, (c, v, i)
        assert found.required, (c, v, i)
    for c, v in ALSO:
        assert (c.lower(), v.lower(), None) in d.index, (c, v)


def test_TC_B_53_CS_full_inventory_lists_the_required_variables_of_every_instance(dm: DeviceModel) -> None:
    report = dm.base_report("FullInventory")
    assert report is not None
    got = listed(report)
    for c, v, i in REQUIRED:
        if c == "EVSE":
            wanted = [(c, e, None, v, i) for e in LAYOUT]
        elif c == "Connector":
            wanted = [(c, e, n, v, i) for e in LAYOUT for n in LAYOUT[e]]
        else:
            wanted = [(c, None, None, v, i)]
        for w in wanted:
            assert w in got, w
    # no controller is reported per EVSE, no EVSE without one
    assert ("EVSE", None, None, "Power", None) not in got
    assert ("Connector", 2, 3, "ConnectorType", None) not in got
    assert len(got) == len(report)  # no entry twice
    for page in report_pages(report, 50):
        ocpp_schema.validate("2.0.1", "NotifyReport", {"requestId": 1, "generatedAt": "2026-01-01T00:00:00.000Z",
                                                       "seqNo": 0, "tbc": False, "reportData": page})


def test_definitions_are_shared_and_immutable(store: MemoryStore) -> None:
    a = DeviceModel(store, LAYOUT, IDENTITY)
    b = DeviceModel(MemoryStore(), {1: [1]}, {"vendor": "Other", "model": "X"})
    assert a.defs is b.defs is definitions()
    v = definitions().index[("ocppcommctrlr", "heartbeatinterval", None)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.default = "1"  # type: ignore[misc]
    assert b.value("ChargingStation", "VendorName") == "Other"
    assert a.value("ChargingStation", "VendorName") == "Acme"


def test_a_definition_twice_or_a_bad_one_is_refused() -> None:
    from station.ocpp201.device_model import Definitions
    v = Variable("X", "Y", "integer")
    with pytest.raises(ValueError, match="twice"):
        Definitions.of([v, Variable("x", "y", "integer")])
    with pytest.raises(ValueError, match="valuesList"):
        Definitions.of([Variable("X", "Z", "OptionList")])
    with pytest.raises(ValueError, match="data type"):
        Definitions.of([Variable("X", "Z", "float")])


# -- GetVariables ------------------------------------------------------------------------------

def test_TC_B_06_CS_get_single_value_defaults_and_identity(dm: DeviceModel) -> None:
    r = get(dm, comp("OCPPCommCtrlr"), var("OfflineThreshold"))
    assert r["attributeStatus"] == "Accepted" and r["attributeValue"] == "60"
    assert r["attributeType"] == "Actual" and r["component"] == {"name": "OCPPCommCtrlr"}
    assert get(dm, comp("ChargingStation"), var("Model"))["attributeValue"] == "Wallbox 22"
    assert get(dm, comp("SecurityCtrlr"), var("Identity"))["attributeValue"] == "CS001"
    assert get(dm, comp("TxCtrlr"), var("TxStopPoint"))["attributeValue"] == "EVConnected,Authorized"


def test_TC_B_07_CS_get_multiple_values_each_answered_on_its_own(dm: DeviceModel) -> None:
    items = [
        {"component": comp("AuthCtrlr"), "variable": var("AuthorizeRemoteStart")},
        {"component": comp("Nope"), "variable": var("Enabled")},
        {"component": comp("EVSE", 2), "variable": var("Power"), "attributeType": "MaxSet"},
        {"component": comp("EVSE", 2), "variable": var("Power"), "attributeType": "Target"},
        {"component": comp("AuthCtrlr"), "variable": var("Nope")},
        {"component": comp("Connector", 2, 2), "variable": var("ConnectorType")},
    ]
    results = dm.get_variables(items)
    ocpp_schema.validate("2.0.1", "GetVariables", {"getVariableResult": results}, result=True)
    assert [r["attributeStatus"] for r in results] == [
        "Accepted", "UnknownComponent", "Accepted", "NotSupportedAttributeType", "UnknownVariable", "Accepted"]
    assert [r["attributeType"] for r in results] == ["Actual", "Actual", "MaxSet", "Target", "Actual", "Actual"]
    assert results[5]["component"] == comp("Connector", 2, 2)


@pytest.mark.parametrize("component", [
    comp("NoSuchCtrlr"), comp("EVSE"), comp("EVSE", 3), comp("EVSE", 1, 1), comp("Connector", 1),
    comp("Connector", 1, 2), comp("OCPPCommCtrlr", 1), comp("OCPPCommCtrlr", instance="Other"),
])
def test_TC_B_32_CS_get_unknown_component(dm: DeviceModel, component: dict) -> None:
    assert get(dm, component, var("Available"))["attributeStatus"] == "UnknownComponent"


@pytest.mark.parametrize("variable", [var("NoSuchVariable"), var("MessageTimeout"), var("MessageTimeout", "Other"),
                                      var("HeartbeatInterval", "Default")])
def test_TC_B_33_CS_get_unknown_variable(dm: DeviceModel, variable: dict) -> None:
    assert get(dm, comp("OCPPCommCtrlr"), variable)["attributeStatus"] == "UnknownVariable"


def test_variable_instances_and_names_case_insensitively(dm: DeviceModel) -> None:
    r = get(dm, comp("ocppcommctrlr"), var("messagetimeout", "default"))
    assert r["attributeStatus"] == "Accepted" and r["attributeValue"] == "30"
    assert r["component"] == {"name": "ocppcommctrlr"}  # echoed as asked
    r = get(dm, comp("DeviceDataCtrlr"), var("ItemsPerMessage", "GetVariables"))
    assert r["attributeValue"] == "50"


def test_TC_B_34_CS_get_not_supported_attribute_type(dm: DeviceModel) -> None:
    for attr in ("Target", "MinSet", "MaxSet"):
        assert get(dm, comp("OCPPCommCtrlr"), var("HeartbeatInterval"), attr)["attributeStatus"] == \
            "NotSupportedAttributeType"


def test_get_write_only_is_rejected_and_shows_no_value(dm: DeviceModel) -> None:
    dm.set_actual("SecurityCtrlr", "BasicAuthPassword", "0123456789abcdefXYZ")
    r = get(dm, comp("SecurityCtrlr"), var("BasicAuthPassword"))
    assert r["attributeStatus"] == "Rejected" and "attributeValue" not in r
    assert r["attributeStatusInfo"]["reasonCode"] == "WriteOnly"
    assert dm.value("SecurityCtrlr", "BasicAuthPassword") == "0123456789abcdefXYZ"  # the link can read it


# -- SetVariables ------------------------------------------------------------------------------

def test_TC_B_09_CS_set_single_value_persists_and_reads_typed(dm: DeviceModel, store: MemoryStore) -> None:
    r = set1(dm, comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "120")
    assert r["attributeStatus"] == "Accepted" and "attributeStatusInfo" not in r
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 120
    assert get(dm, comp("OCPPCommCtrlr"), var("HeartbeatInterval"))["attributeValue"] == "120"
    again = DeviceModel(store, LAYOUT, IDENTITY)  # a restart
    assert again.value("OCPPCommCtrlr", "HeartbeatInterval") == 120
    assert again.load_problems == []


def test_TC_B_10_CS_set_multiple_values_typed_reads(dm: DeviceModel) -> None:
    items = [
        {"component": comp("AuthCtrlr"), "variable": var("LocalPreAuthorize"), "attributeValue": "TRUE"},
        {"component": comp("TxCtrlr"), "variable": var("TxStartPoint"), "attributeValue": "EVConnected, Authorized"},
        {"component": comp("SmartChargingCtrlr"), "variable": var("LimitChangeSignificance"), "attributeValue": "2.5"},
        {"component": comp("OCPPCommCtrlr"), "variable": var("MessageAttempts", "TransactionEvent"),
         "attributeValue": "5"},
    ]
    results = dm.set_variables(items)
    assert [r["attributeStatus"] for r in results] == ["Accepted"] * 4
    assert dm.value("AuthCtrlr", "LocalPreAuthorize") is True
    assert get(dm, comp("AuthCtrlr"), var("LocalPreAuthorize"))["attributeValue"] == "true"  # normalized
    assert dm.value("TxCtrlr", "TxStartPoint") == ["EVConnected", "Authorized"]
    assert dm.value("SmartChargingCtrlr", "LimitChangeSignificance") == 2.5
    assert dm.value("OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent") == 5


def test_TC_B_35_36_37_CS_set_unknown_component_variable_attribute(dm: DeviceModel) -> None:
    assert set1(dm, comp("NoCtrlr"), var("Enabled"), "true")["attributeStatus"] == "UnknownComponent"
    assert set1(dm, comp("EVSE", 9), var("Available"), "true")["attributeStatus"] == "UnknownComponent"
    assert set1(dm, comp("AuthCtrlr"), var("NoVariable"), "true")["attributeStatus"] == "UnknownVariable"
    assert set1(dm, comp("AuthCtrlr"), var("Enabled"), "true", "MaxSet")["attributeStatus"] == \
        "NotSupportedAttributeType"


@pytest.mark.parametrize("component,variable,value,reason", [
    (comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "ten", "InvalidValue"),
    (comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "1.5", "InvalidValue"),
    (comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "", "InvalidValue"),
    (comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "0", "ValueTooLow"),
    (comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "1" + "0" * 400, "InvalidValue"),
    (comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "86401", "ValueTooHigh"),
    (comp("AuthCtrlr"), var("Enabled"), "yes", "InvalidValue"),
    (comp("SmartChargingCtrlr"), var("LimitChangeSignificance"), "nan", "InvalidValue"),
    (comp("SmartChargingCtrlr"), var("LimitChangeSignificance"), "101", "ValueTooHigh"),
    (comp("AuthCacheCtrlr"), var("Policy"), "MRU", "InvalidValue"),
    (comp("TxCtrlr"), var("TxStopPoint"), "EVConnected,Sunshine", "InvalidValue"),
    (comp("TxCtrlr"), var("TxStopPoint"), "EVConnected,EVConnected", "InvalidValue"),
    (comp("TxCtrlr"), var("TxStopPoint"), "", "InvalidValue"),
    (comp("SampledDataCtrlr"), var("TxUpdatedMeasurands"), "Energy.Active.Import.Register,Bogus", "InvalidValue"),
    (comp("ClockCtrlr"), var("TimeSource"), "Sundial", "InvalidValue"),
    (comp("OCPPCommCtrlr"), var("NetworkConfigurationPriority"), "1,x", "InvalidValue"),
    (comp("SecurityCtrlr"), var("OrganizationName"), "x" * 51, "ValueTooHigh"),
    (comp("SecurityCtrlr"), var("OrganizationName"), "x" * 1001, "TooLargeElement"),
    (comp("SecurityCtrlr"), var("BasicAuthPassword"), "short", "ValueTooLow"),
])
def test_TC_B_11_CS_set_invalidly_formatted_values_rejected_with_reason(
        dm: DeviceModel, store: MemoryStore, component: dict, variable: dict, value: str, reason: str) -> None:
    before = get(dm, component, variable).get("attributeValue")
    r = set1(dm, component, variable, value)
    assert r["attributeStatus"] == "Rejected"
    assert r["attributeStatusInfo"]["reasonCode"] == reason
    assert variable["name"] in r["attributeStatusInfo"]["additionalInfo"]
    assert get(dm, component, variable).get("attributeValue") == before
    assert store.items(NS) == {}


def test_TC_B_39_CS_set_read_only_rejected(dm: DeviceModel) -> None:
    for c, v, value in [(comp("SecurityCtrlr"), var("SecurityProfile"), "3"),
                        (comp("ChargingStation"), var("VendorName"), "Me"),
                        (comp("EVSE", 1), var("AvailabilityState"), "Available"),
                        (comp("DeviceDataCtrlr"), var("ItemsPerMessage", "GetReport"), "100")]:
        r = set1(dm, c, v, value)
        assert r["attributeStatus"] == "Rejected" and r["attributeStatusInfo"]["reasonCode"] == "ReadOnly"


def test_set_network_configuration_priority_accepted(dm: DeviceModel) -> None:
    """A05.FR.04: Accepted (not RebootRequired); the new order is used from the next connection."""
    r = set1(dm, comp("OCPPCommCtrlr"), var("NetworkConfigurationPriority"), "1,0")
    assert r["attributeStatus"] == "Accepted"
    assert dm.value("OCPPCommCtrlr", "NetworkConfigurationPriority") == ["1", "0"]


def test_set_write_only_password_is_set_but_never_logged(dm: DeviceModel, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Passw0rd-XYZ"
    with caplog.at_level(logging.DEBUG):
        assert set1(dm, comp("SecurityCtrlr"), var("BasicAuthPassword"), secret)["attributeStatus"] == "Accepted"
        dm.set_variables([{"component": comp("SecurityCtrlr"), "variable": var("BasicAuthPassword"),
                           "attributeValue": secret + "!" * 30}])  # too long: rejected
    assert dm.value("SecurityCtrlr", "BasicAuthPassword") == secret
    assert "BasicAuthPassword" in caplog.text and secret not in caplog.text
    for base in ("FullInventory", "ConfigurationInventory"):
        report = dm.base_report(base)
        assert report is not None and secret not in str(report)
        [entry] = [r for r in report if r["variable"]["name"] == "BasicAuthPassword"]
        assert entry["variableAttribute"] == [{"type": "Actual", "mutability": "WriteOnly", "persistent": True,
                                               "constant": False}]


def test_set_validates_all_before_applying_any_and_applies_atomically(store: MemoryStore) -> None:
    class Failing(MemoryStore):
        puts = 0

        def put(self, ns: str, key: str, value: object) -> None:
            Failing.puts += 1
            if Failing.puts == 2:
                raise OSError("disk full")
            super().put(ns, key, value)

    failing = Failing()
    dm = DeviceModel(failing, LAYOUT, IDENTITY)
    told: list = []
    dm.subscribe("OCPPCommCtrlr", "HeartbeatInterval", lambda *a: told.append(a))
    items = [{"component": comp("OCPPCommCtrlr"), "variable": var("HeartbeatInterval"), "attributeValue": "100"},
             {"component": comp("OCPPCommCtrlr"), "variable": var("OfflineThreshold"), "attributeValue": "100"}]
    with pytest.raises(OSError):
        dm.set_variables(items)
    assert failing.items(NS) == {}  # the first write was rolled back with the second
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 300 and told == []


def test_set_to_the_default_stores_nothing(dm: DeviceModel, store: MemoryStore) -> None:
    set1(dm, comp("AuthCtrlr"), var("LocalPreAuthorize"), "true")
    assert len(store.items(NS)) == 1
    set1(dm, comp("AuthCtrlr"), var("LocalPreAuthorize"), "false")
    assert store.items(NS) == {}
    assert dm.value("AuthCtrlr", "LocalPreAuthorize") is False


def test_subscribers_are_told_after_the_change_with_the_typed_value(dm: DeviceModel,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    told: list = []

    def broken(*_: object) -> None:
        raise RuntimeError("subscriber bug")

    def record(ck: tuple, vk: tuple, value: object) -> None:
        told.append((ck, vk, value, dm.value("TxCtrlr", "TxStopPoint")))

    dm.subscribe("TxCtrlr", "TxStopPoint", broken)
    dm.subscribe("TxCtrlr", "TxStopPoint", record)
    dm.subscribe("OCPPCommCtrlr", "MessageAttempts", lambda *a: told.append(a), instance="TransactionEvent")
    results = dm.set_variables([
        {"component": comp("TxCtrlr"), "variable": var("TxStopPoint"), "attributeValue": "EVConnected"},
        {"component": comp("TxCtrlr"), "variable": var("TxStartPoint"), "attributeValue": "Nonsense"},
        {"component": comp("OCPPCommCtrlr"), "variable": var("MessageAttempts", "TransactionEvent"),
         "attributeValue": "7"},
    ])
    assert [r["attributeStatus"] for r in results] == ["Accepted", "Rejected", "Accepted"]
    assert told == [(("TxCtrlr", None, None, None), ("TxStopPoint", None), ["EVConnected"], ["EVConnected"]),
                    (("OCPPCommCtrlr", None, None, None), ("MessageAttempts", "TransactionEvent"), 7)]
    assert "subscriber of TxCtrlr.TxStopPoint failed" in caplog.text
    told.clear()
    dm.subscribe("SecurityCtrlr", "SecurityProfile", lambda *a: told.append(a))
    dm.set_actual("SecurityCtrlr", "SecurityProfile", 3)  # the station's own change: nobody is told
    assert told == []


def test_set_actual_volatile_in_memory_persistent_in_store(dm: DeviceModel, store: MemoryStore) -> None:
    dm.set_actual("EVSE", "AvailabilityState", "Unavailable", evse=2)
    dm.set_actual("EVSE", "Power", 11000, evse=2, attribute="MaxSet")
    dm.set_actual("LocalAuthListCtrlr", "Entries", 12)
    dm.set_actual("SecurityCtrlr", "SecurityProfile", 2)
    assert dm.value("EVSE", "AvailabilityState", evse=2) == "Unavailable"
    assert dm.value("EVSE", "AvailabilityState", evse=1) == "Available"
    assert dm.value("EVSE", "Power", evse=2, attribute="MaxSet") == 11000.0
    assert get(dm, comp("EVSE", 2), var("Power"), "MaxSet")["attributeValue"] == "11000"
    assert get(dm, comp("LocalAuthListCtrlr"), var("Entries"))["attributeValue"] == "12"
    assert list(store.items(NS).values()) == ["2"]  # only SecurityProfile is persistent
    again = DeviceModel(store, LAYOUT, IDENTITY)
    assert again.value("SecurityCtrlr", "SecurityProfile") == 2
    assert again.value("EVSE", "AvailabilityState", evse=2) == "Available"
    with pytest.raises(ValueError):
        dm.set_actual("EVSE", "AvailabilityState", "Sleeping", evse=1)
    with pytest.raises(KeyError):
        dm.set_actual("EVSE", "AvailabilityState", "Available")  # no evse
    with pytest.raises(KeyError):
        dm.value("OCPPCommCtrlr", "NoSuch")


def test_provider_gives_the_live_value(dm: DeviceModel) -> None:
    now = ["2026-01-01T00:00:00.000Z"]
    dm.provide("ClockCtrlr", "DateTime", lambda: now[0])
    assert get(dm, comp("ClockCtrlr"), var("DateTime"))["attributeValue"] == now[0]
    now[0] = "2026-01-01T00:00:05.000Z"
    assert dm.value("ClockCtrlr", "DateTime") == now[0]


def test_station_check_rejects_what_the_station_cannot_use(dm: DeviceModel) -> None:
    dm.add_check("OCPPCommCtrlr", "NetworkConfigurationPriority",
                 lambda v: None if set(v.split(",")) <= {"0", "1"} else "no such configuration slot")
    r = set1(dm, comp("OCPPCommCtrlr"), var("NetworkConfigurationPriority"), "2,0")
    assert r["attributeStatus"] == "Rejected" and "no such configuration slot" in r["attributeStatusInfo"]["additionalInfo"]
    assert set1(dm, comp("OCPPCommCtrlr"), var("NetworkConfigurationPriority"), "1,0")["attributeStatus"] == \
        "Accepted"


def test_a_bad_stored_value_is_not_used_and_logged(store: MemoryStore, caplog: pytest.LogCaptureFixture) -> None:
    store.put(NS, "OCPPCommCtrlr||||HeartbeatInterval||Actual", "-5")
    store.put(NS, "GoneCtrlr||||Enabled||Actual", "true")
    store.put(NS, "Connector||7|1|Available||Actual", "true")  # an EVSE this layout lacks
    store.put(NS, "OCPPCommCtrlr||||OfflineThreshold||Actual", "90")
    store.put(NS, "EVSE||1||AvailabilityState||Actual", "Faulted")  # a runtime value: never from the store
    dm = DeviceModel(store, LAYOUT, IDENTITY)
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 300
    assert dm.value("OCPPCommCtrlr", "OfflineThreshold") == 90
    assert dm.value("EVSE", "AvailabilityState", evse=1) == "Available"
    assert len(dm.load_problems) == 4
    assert "HeartbeatInterval" in caplog.text


# -- reports -----------------------------------------------------------------------------------

def test_TC_B_12_CS_configuration_inventory_lists_only_settable_variables(dm: DeviceModel) -> None:
    report = dm.base_report("ConfigurationInventory")
    assert report
    assert all(any(a["mutability"] != "ReadOnly" for a in r["variableAttribute"]) for r in report)
    names = {(r["component"]["name"], r["variable"]["name"]) for r in report}
    assert ("OCPPCommCtrlr", "HeartbeatInterval") in names and ("TxCtrlr", "TxStartPoint") in names
    assert ("ChargingStation", "VendorName") not in names


def test_TC_B_13_CS_full_inventory_values_and_characteristics(dm: DeviceModel) -> None:
    set1(dm, comp("OCPPCommCtrlr"), var("HeartbeatInterval"), "42")
    report = dm.base_report("FullInventory")
    assert report is not None
    [hb] = [r for r in report if r["variable"]["name"] == "HeartbeatInterval"]
    assert hb["variableAttribute"] == [{"type": "Actual", "value": "42", "mutability": "ReadWrite",
                                        "persistent": True, "constant": False}]
    assert hb["variableCharacteristics"] == {"dataType": "integer", "supportsMonitoring": True, "unit": "s",
                                             "minLimit": 1, "maxLimit": 86400}
    [tsp] = [r for r in report if r["variable"]["name"] == "TxStartPoint"]
    assert tsp["variableCharacteristics"]["valuesList"] == \
        "ParkingBayOccupancy,EVConnected,Authorized,DataSigned,PowerPathClosed,EnergyTransfer"
    [power] = [r for r in report if r["variable"]["name"] == "Power" and r["component"]["evse"]["id"] == 1]
    assert [a["type"] for a in power["variableAttribute"]] == ["Actual", "MaxSet"]
    # report order: ChargingStation first, then EVSE 1 with its connector, EVSE 2 ...
    order = [(r["component"]["name"], r["component"].get("evse", {}).get("id")) for r in report]
    firsts = list(dict.fromkeys(order))
    assert firsts[:6] == [("ChargingStation", None), ("EVSE", 1), ("Connector", 1), ("EVSE", 2), ("Connector", 2),
                          ("AlignedDataCtrlr", None)]


def test_TC_B_14_CS_summary_inventory_is_availability_and_problems(dm: DeviceModel) -> None:
    report = dm.base_report("SummaryInventory")
    assert report
    assert {r["variable"]["name"] for r in report} == {"AvailabilityState", "Available", "Problem"}
    assert ("Connector", 2, 2, "AvailabilityState", None) in listed(report)


def test_TC_B_15_CS_unknown_report_base_is_not_supported(dm: DeviceModel) -> None:
    assert dm.base_report("EverythingInventory") is None


def test_TC_B_16_CS_custom_report_with_component_criteria(dm: DeviceModel) -> None:
    set1(dm, comp("AuthCacheCtrlr"), var("Enabled"), "false")
    enabled = {r["component"]["name"] for r in dm.custom_report(["Enabled"], None)}
    assert "AuthCtrlr" in enabled and "AuthCacheCtrlr" not in enabled and "ChargingStation" not in enabled
    assert dm.custom_report(["Problem"], None) == []
    dm.set_actual("ChargingStation", "Problem", True)
    assert {r["component"]["name"] for r in dm.custom_report(["Problem"], None)} == {"ChargingStation"}
    dm.set_actual("Connector", "Available", False, evse=2, connector=1)
    available = {(r["component"]["name"], r["component"].get("evse", {}).get("id"),
                  r["component"].get("evse", {}).get("connectorId")) for r in dm.custom_report(["Available"], None)}
    assert ("Connector", 2, 2) in available and ("Connector", 2, 1) not in available
    assert dm.custom_report(["Active"], None) == []  # no component of this station has Active


def test_TC_B_17_CS_custom_report_with_component_variable(dm: DeviceModel) -> None:
    report = dm.custom_report(None, [{"component": comp("OCPPCommCtrlr"), "variable": var("HeartbeatInterval")},
                                     {"component": comp("AuthCtrlr")}])
    got = listed(report)
    assert ("OCPPCommCtrlr", None, None, "HeartbeatInterval", None) in got
    assert {g for g in got if g[0] == "OCPPCommCtrlr"} == {("OCPPCommCtrlr", None, None, "HeartbeatInterval", None)}
    assert len([g for g in got if g[0] == "AuthCtrlr"]) == len(definitions().by_component["authctrlr"])
    assert dm.custom_report(None, [{"component": comp("NoSuchCtrlr")}]) == []


def test_TC_B_18_CS_custom_report_with_criteria_and_component_variable(dm: DeviceModel) -> None:
    cv = [{"component": comp("AuthCtrlr"), "variable": var("Enabled")},
          {"component": comp("AuthCacheCtrlr"), "variable": var("Enabled")}]
    set1(dm, comp("AuthCacheCtrlr"), var("Enabled"), "false")
    assert listed(dm.custom_report(["Enabled"], cv)) == {("AuthCtrlr", None, None, "Enabled", None)}


def test_TC_B_54_CS_custom_report_variable_without_instance_lists_all_instances(dm: DeviceModel) -> None:
    got = listed(dm.custom_report(None, [{"component": comp("DeviceDataCtrlr"), "variable": var("ItemsPerMessage")}]))
    assert got == {("DeviceDataCtrlr", None, None, "ItemsPerMessage", i) for i in ("GetReport", "GetVariables",
                                                                                    "SetVariables")}


def test_TC_B_55_CS_custom_report_variable_with_instance(dm: DeviceModel) -> None:
    got = listed(dm.custom_report(None, [{"component": comp("DeviceDataCtrlr"),
                                          "variable": var("ItemsPerMessage", "GetReport")}]))
    assert got == {("DeviceDataCtrlr", None, None, "ItemsPerMessage", "GetReport")}


def test_TC_B_56_CS_custom_report_without_evse_id_lists_every_evse(dm: DeviceModel) -> None:
    got = listed(dm.custom_report(None, [{"component": comp("EVSE"), "variable": var("AvailabilityState")}]))
    assert got == {("EVSE", 1, None, "AvailabilityState", None), ("EVSE", 2, None, "AvailabilityState", None)}
    got = listed(dm.custom_report(None, [{"component": comp("Connector", 2), "variable": var("ConnectorType")}]))
    assert got == {("Connector", 2, 1, "ConnectorType", None), ("Connector", 2, 2, "ConnectorType", None)}
    got = listed(dm.custom_report(None, [{"component": comp("Connector", 2, 2), "variable": var("ConnectorType")}]))
    assert got == {("Connector", 2, 2, "ConnectorType", None)}


def test_report_pages_split_by_items_and_bytes(dm: DeviceModel) -> None:
    report = dm.base_report("FullInventory")
    assert report is not None and len(report) > 100
    pages = report_pages(report, 10)
    assert [len(p) for p in pages[:-1]] == [10] * (len(pages) - 1) and 1 <= len(pages[-1]) <= 10
    assert [e for p in pages for e in p] == report
    import json
    small = report_pages(report, 1000, bytes_per_message=2000)
    assert len(small) > 1 and [e for p in small for e in p] == report
    for p in small:
        assert len(p) == 1 or len(json.dumps(p, separators=(",", ":"))) + 200 <= 2000
    assert report_pages([], 10) == []


# -- --ocpp-config -----------------------------------------------------------------------------

def test_apply_config_file_applies_the_valid_entries_and_lists_problems(dm: DeviceModel) -> None:
    problems = dm.apply_config_file([
        {"component": comp("OCPPCommCtrlr"), "variable": var("HeartbeatInterval"), "attributeValue": "30"},
        {"component": comp("ChargingStation"), "variable": var("VendorName"), "attributeValue": "Acme"},  # restated
        {"component": comp("ChargingStation"), "variable": var("VendorName"), "attributeValue": "Other"},
        {"component": comp("TxCtrlr"), "variable": var("TxStartPoint"), "attributeValue": "Never"},
        {"component": comp("Nope"), "variable": var("X"), "attributeValue": "1"},
        {"component": comp("AuthCtrlr"), "variable": var("Enabled"), "attributeValue": True},
        "junk",
    ])
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == 30
    assert len(problems) == 5
    assert problems[0].startswith("entry 6:") and problems[1].startswith("entry 7:")
    assert "entry 3 (ChargingStation.VendorName): Rejected" in problems[2]
    assert "entry 4 (TxCtrlr.TxStartPoint)" in problems[3] and "UnknownComponent" in problems[4]
    assert dm.apply_config_file({"HeartbeatInterval": "3"}) != []  # the 1.6 shape  # type: ignore[arg-type]


# -- shared definitions, sparse stations ---------------------------------------------------------

def test_a_station_holds_only_its_changed_values() -> None:
    store = MemoryStore()  # one empty store for all: nothing is loaded
    layout = {1: [1], 2: [1]}
    identity = {"vendor": "Acme", "model": "M"}
    definitions()
    DeviceModel(store, layout, identity)  # warm up imports and caches
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        models = [DeviceModel(store, layout, identity) for _ in range(1000)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_station = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(models)
    print(f"bytes per DeviceModel: {per_station:.0f}")
    assert per_station < 1500, per_station  # the definitions are ~100 variables: far more if copied
    assert all(m.defs is models[0].defs for m in models)


# -- docs/device-model.md ------------------------------------------------------------------------

def test_device_model_doc_is_current() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "device-model.md"
    assert doc.read_text() == markdown(), (
        "docs/device-model.md is stale: python -m station.ocpp201.device_model --markdown > docs/device-model.md")
    for v in definitions().variables:
        assert f"| {v.name}" in doc.read_text()


def test_values_lists_are_the_2_0_1_enumerations() -> None:
    """Measurand lists offer only 2.0.1 MeasurandEnumType names (1.6's Temperature is not one);
    ConnectorType only ConnectorEnumType names."""
    import json

    schemas = Path(ocpp_schema.SCHEMA_ROOT) / "v201" / "schemas"
    measurands = set(json.loads((schemas / "MeterValuesRequest.json").read_text())
                     ["definitions"]["MeasurandEnumType"]["enum"])
    connectors = set(json.loads((schemas / "ReserveNowRequest.json").read_text())
                     ["definitions"]["ConnectorEnumType"]["enum"])
    d = definitions()
    lists = [v for v in d.variables if v.name.endswith("Measurands")]
    assert len(lists) == 5
    for v in lists:
        assert v.values_list and set(v.values_list) <= measurands, v.label
        assert "Temperature" not in v.values_list
    assert set(d.index[("connector", "connectortype", None)].values_list or ()) == connectors


def test_stored_key_names_the_value_a_set_writes(dm: DeviceModel, store: MemoryStore) -> None:
    item = {"component": comp("EVSE", 2), "variable": var("Power"), "attributeType": "MaxSet"}
    assert dm.stored_key({**item, "variable": var("Nope")}) is None
    assert dm.stored_key({**item, "attributeType": "Target"}) is None
    item = {"component": comp("ocppcommctrlr"), "variable": var("MessageAttempts", "transactionevent"),
            "attributeValue": "9"}
    key = dm.stored_key(item)
    dm.set_variables([item])
    assert key is not None and store.items(NS) == {key: "9"}
