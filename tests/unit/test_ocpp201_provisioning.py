"""OCPP 2.0.1 Provisioning handlers (station/ocpp201/handlers/provisioning.py) on a fake adapter
(device_model, call, clock, log): GetVariables / SetVariables with the DeviceDataCtrlr message
limits, GetBaseReport / GetReport answers and the NotifyReport parts that follow (requestId,
generatedAt, seqNo from 0, tbc), every frame checked against the 2.0.1 JSON schemas."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.exceptions import FormatViolationError, OccurrenceConstraintViolationError

from station import ocpp_schema
from station.core.clock import FakeClock
from station.ocpp201.device_model import Definitions, DeviceModel, definitions
from station.ocpp201.handlers import routing_table
from station.ocpp201.handlers.provisioning import routes
from station.store import MemoryStore

LAYOUT = {1: [1], 2: [1]}
IDENTITY = {"vendor": "Acme", "model": "W22", "serial": "SN", "firmware_version": "1.0", "id": "CS1"}


def with_default(label: str, default: str) -> Definitions:
    """The station's definitions with one default changed (a station built with other limits)."""
    vs = [dataclasses.replace(v, default=default) if v.label == label else v for v in definitions().variables]
    assert any(v.label == label for v in vs)
    return Definitions.of(vs)


class FakeAdapter:
    """What the handlers use of the adapter; ``call`` records the Calls and can fail one."""

    def __init__(self, fail_at: int | None = None, defs: Definitions | None = None,
                 model: type[DeviceModel] = DeviceModel) -> None:
        self.device_model = model(MemoryStore(), LAYOUT, IDENTITY, defs=defs)
        self.clock = FakeClock(datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))
        self.log = logging.getLogger("test.provisioning")
        self.calls: list[tuple[str, dict]] = []
        self.fail_at = fail_at

    async def call(self, action: str, payload: dict) -> dict:
        ocpp_schema.validate("2.0.1", action, payload)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise TimeoutError("no answer")
        self.calls.append((action, payload))
        return {}


async def handle(ad: FakeAdapter, action: str, payload: dict) -> tuple[dict, Any]:
    """Run the handler as the adapter does: request checked, answer checked, ``after`` returned."""
    ocpp_schema.validate("2.0.1", action, payload)
    answer = await routes.handlers[action](ad, payload)
    answer, after = answer if isinstance(answer, tuple) else (answer, None)
    ocpp_schema.validate("2.0.1", action, answer, result=True)
    return answer, after


def gv(component: str, variable: str, instance: str | None = None, **extra: Any) -> dict:
    v: dict = {"name": variable, **({"instance": instance} if instance else {})}
    return {"component": {"name": component}, "variable": v, **extra}


def test_routes_are_the_provisioning_block() -> None:
    assert set(routing_table(routes)) == {"GetVariables", "SetVariables", "GetBaseReport", "GetReport"}
    assert routes.profile == "Provisioning"


async def test_TC_B_07_CS_get_variables_many_elements() -> None:
    ad = FakeAdapter()
    answer, after = await handle(ad, "GetVariables", {"getVariableData": [
        gv("OCPPCommCtrlr", "OfflineThreshold"), gv("NoCtrlr", "X"), gv("SecurityCtrlr", "BasicAuthPassword")]})
    assert after is None
    assert [r["attributeStatus"] for r in answer["getVariableResult"]] == ["Accepted", "UnknownComponent", "Rejected"]


async def test_get_variables_over_items_per_message_is_occurrence_constraint_violation() -> None:
    ad = FakeAdapter()
    limit = ad.device_model.value("DeviceDataCtrlr", "ItemsPerMessage", instance="GetVariables")
    ok = {"getVariableData": [gv("AuthCtrlr", "Enabled")] * limit}
    answer, _ = await handle(ad, "GetVariables", ok)
    assert len(answer["getVariableResult"]) == limit
    with pytest.raises(OccurrenceConstraintViolationError, match="ItemsPerMessageGetVariables"):
        await handle(ad, "GetVariables", {"getVariableData": [gv("AuthCtrlr", "Enabled")] * (limit + 1)})


async def test_set_variables_over_bytes_per_message_is_format_violation() -> None:
    ad = FakeAdapter(defs=with_default("DeviceDataCtrlr.BytesPerMessage[SetVariables]", "20000"))
    big = {"setVariableData": [gv("SecurityCtrlr", "OrganizationName", attributeValue="x" * 1000)] * 20}
    assert len(json.dumps(big)) > 20_000
    with pytest.raises(FormatViolationError, match="BytesPerMessageSetVariables"):
        await handle(ad, "SetVariables", big)
    with pytest.raises(OccurrenceConstraintViolationError):
        await handle(ad, "SetVariables", {"setVariableData": [gv("AuthCtrlr", "Enabled", attributeValue="true")] * 51})
    assert ad.device_model.value("SecurityCtrlr", "OrganizationName") == ""  # nothing applied


async def test_TC_B_10_CS_set_variables_each_answered_and_subscribers_told() -> None:
    ad = FakeAdapter()
    told: list = []
    ad.device_model.subscribe("OCPPCommCtrlr", "HeartbeatInterval", lambda c, v, x: told.append(x))
    answer, after = await handle(ad, "SetVariables", {"setVariableData": [
        gv("OCPPCommCtrlr", "HeartbeatInterval", attributeValue="30"),
        gv("ChargingStation", "Model", attributeValue="X"),
        gv("OCPPCommCtrlr", "NetworkConfigurationPriority", attributeValue="0"),
    ]})
    assert after is None
    assert [r["attributeStatus"] for r in answer["setVariableResult"]] == ["Accepted", "Rejected", "Accepted"]
    assert answer["setVariableResult"][1]["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    assert told == [30]


async def test_TC_B_13_CS_full_inventory_sent_in_parts_with_seq_no_and_tbc() -> None:
    ad = FakeAdapter()
    answer, after = await handle(ad, "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert answer == {"status": "Accepted"} and ad.calls == []  # nothing before the answer is on the wire
    expected = ad.device_model.base_report("FullInventory")
    ad.clock.advance(5)
    await after()
    items = ad.device_model.value("DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport")
    assert len(expected) > items  # so the report really comes in parts
    assert {a for a, _ in ad.calls} == {"NotifyReport"}
    parts = [p for _, p in ad.calls]
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert [p["tbc"] for p in parts] == [True] * (len(parts) - 1) + [False]
    assert {p["requestId"] for p in parts} == {7}
    assert {p["generatedAt"] for p in parts} == {"2026-03-01T12:00:00.123Z"}  # when asked, ms and Z
    assert all(len(p["reportData"]) <= items for p in parts)
    assert [e for p in parts for e in p["reportData"]] == expected


async def test_TC_B_12_14_CS_configuration_and_summary_inventory() -> None:
    ad = FakeAdapter()
    for base, must, never in [("ConfigurationInventory", "HeartbeatInterval", "VendorName"),
                              ("SummaryInventory", "AvailabilityState", "HeartbeatInterval")]:
        ad.calls.clear()
        answer, after = await handle(ad, "GetBaseReport", {"requestId": 1, "reportBase": base})
        assert answer == {"status": "Accepted"}
        await after()
        names = {e["variable"]["name"] for _, p in ad.calls for e in p["reportData"]}
        assert must in names and never not in names


async def test_TC_B_15_CS_base_report_not_supported() -> None:
    class NoSummary(DeviceModel):  # a station without SummaryInventory
        def base_report(self, report_base: str) -> list[dict] | None:
            return None if report_base == "SummaryInventory" else super().base_report(report_base)

    ad = FakeAdapter(model=NoSummary)
    answer, after = await handle(ad, "GetBaseReport", {"requestId": 1, "reportBase": "SummaryInventory"})
    assert answer == {"status": "NotSupported"} and after is None


async def test_TC_B_16_CS_get_report_with_criteria() -> None:
    ad = FakeAdapter()
    answer, after = await handle(ad, "GetReport", {"requestId": 3, "componentCriteria": ["Enabled"]})
    assert answer == {"status": "Accepted"}
    await after()
    comps = {e["component"]["name"] for _, p in ad.calls for e in p["reportData"]}
    assert "AuthCtrlr" in comps and "ChargingStation" not in comps
    answer, after = await handle(ad, "GetReport", {"requestId": 4, "componentCriteria": ["Problem"]})
    assert answer == {"status": "EmptyResultSet"} and after is None


async def test_TC_B_17_CS_get_report_with_component_variable_single_part() -> None:
    ad = FakeAdapter()
    answer, after = await handle(ad, "GetReport", {"requestId": 9, "componentVariable": [
        {"component": {"name": "EVSE"}, "variable": {"name": "AvailabilityState"}}]})
    assert answer == {"status": "Accepted"}
    await after()
    [(action, part)] = ad.calls
    assert part["seqNo"] == 0 and part["tbc"] is False and part["requestId"] == 9
    assert [e["component"]["evse"]["id"] for e in part["reportData"]] == [1, 2]
    answer, _ = await handle(ad, "GetReport", {"requestId": 10, "componentVariable": [
        {"component": {"name": "NoSuchCtrlr"}}]})
    assert answer == {"status": "EmptyResultSet"}


async def test_a_part_not_delivered_ends_the_report(caplog: pytest.LogCaptureFixture) -> None:
    ad = FakeAdapter(fail_at=1)
    _, after = await handle(ad, "GetBaseReport", {"requestId": 5, "reportBase": "FullInventory"})
    await after()  # does not raise
    assert [p["seqNo"] for _, p in ad.calls] == [0]
    assert "NotifyReport 5 part 2" in caplog.text


async def test_report_parts_respect_bytes_per_message() -> None:
    ad = FakeAdapter(defs=with_default("DeviceDataCtrlr.BytesPerMessage[GetReport]", "3000"))
    _, after = await handle(ad, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"})
    await after()
    items = ad.device_model.value("DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport")
    assert len(ad.calls) > len(ad.device_model.base_report("FullInventory")) // items + 1
    for _, p in ad.calls:
        assert len(p["reportData"]) == 1 or len(json.dumps(p, separators=(",", ":"))) <= 3000
