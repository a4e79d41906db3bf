"""OCPP 2.0.1 Provisioning block (Part 2 B): the CSMS reads and sets device model variables
(B06 GetVariables, B05 SetVariables) and asks for reports (B07 GetBaseReport, B08 GetReport),
which the station sends afterwards as NotifyReport parts (seqNo from 0, tbc on all but the last).

The work is the device model's (station/ocpp201/device_model.py); these handlers apply the
message limits of DeviceDataCtrlr: more elements than ItemsPerMessage(GetVariables /
SetVariables) is a CallError OccurrenceConstraintViolation, a request longer than
BytesPerMessage(...) a CallError FormatViolation (B06.FR / B05.FR: the rpc layer turns the
raised exception into the CallError). A report holds at most ItemsPerMessage(GetReport) entries
and about BytesPerMessage(GetReport) bytes per NotifyReport. The adapter learns of changed
values through ``DeviceModel.subscribe``; nothing here touches the station itself.

The adapter object these handlers get needs: ``device_model``, ``call(action, payload)``
(awaitable), ``clock`` (``now()``) and ``log``.
"""

from __future__ import annotations

import json
from typing import Any

from ocpp.exceptions import FormatViolationError, OccurrenceConstraintViolationError

from station.core.clock import iso
from station.ocpp201.device_model import report_pages
from station.ocpp201.handlers import Routes

routes = Routes("Provisioning")


def _limits(ad: Any, message: str) -> tuple[int, int]:
    """(ItemsPerMessage, BytesPerMessage) of ``message`` (GetReport, GetVariables, SetVariables)."""
    dm = ad.device_model
    return (int(dm.value("DeviceDataCtrlr", "ItemsPerMessage", instance=message)),
            int(dm.value("DeviceDataCtrlr", "BytesPerMessage", instance=message)))


def _check_size(ad: Any, message: str, payload: dict, items: list) -> None:
    """Raise the CallError B05/B06 ask for when a request is over the station's limits. The
    length counted is the payload's compact JSON in UTF-8 (the frame around it is not counted)."""
    max_items, max_bytes = _limits(ad, message)
    if len(items) > max_items:
        raise OccurrenceConstraintViolationError(
            description=f"{len(items)} elements; ItemsPerMessage{message} is {max_items}")
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        raise FormatViolationError(description=f"{size} bytes; BytesPerMessage{message} is {max_bytes}")


@routes.on("GetVariables")
async def get_variables(ad: Any, p: dict) -> dict:
    items = p["getVariableData"]
    _check_size(ad, "GetVariables", p, items)
    return {"getVariableResult": ad.device_model.get_variables(items)}


@routes.on("SetVariables")
async def set_variables(ad: Any, p: dict) -> dict:
    items = p["setVariableData"]
    _check_size(ad, "SetVariables", p, items)
    return {"setVariableResult": ad.device_model.set_variables(items, source="CSMS")}


async def send_report(ad: Any, request_id: int, report_data: list[dict], generated_at: str) -> None:
    """NotifyReport parts of one report, in order (seqNo 0.., tbc true on all but the last).
    A part the CSMS does not take (link lost, CallError, timeout) ends the report: the CSMS
    asks again."""
    items, max_bytes = _limits(ad, "GetReport")
    pages = report_pages(report_data, items, max_bytes)
    for seq, page in enumerate(pages):
        payload = {"requestId": request_id, "generatedAt": generated_at, "seqNo": seq,
                   "tbc": seq < len(pages) - 1, "reportData": page}
        try:
            await ad.call("NotifyReport", payload)
        except Exception as e:  # noqa: BLE001 - any failure of the call ends this report, never the station
            ad.log.warning("NotifyReport %s part %d of %d not delivered (%s); report abandoned",
                           request_id, seq + 1, len(pages), type(e).__name__)
            return


def _answer(ad: Any, request_id: int, report_data: list[dict] | None) -> Any:
    if report_data is None:
        return {"status": "NotSupported"}
    if not report_data:
        return {"status": "EmptyResultSet"}
    generated_at = iso(ad.clock.now())  # the values are taken now, as the answer is given

    async def after() -> None:
        await send_report(ad, request_id, report_data, generated_at)

    return {"status": "Accepted"}, after


@routes.on("GetBaseReport")
async def get_base_report(ad: Any, p: dict) -> Any:
    return _answer(ad, p["requestId"], ad.device_model.base_report(p["reportBase"]))


@routes.on("GetReport")
async def get_report(ad: Any, p: dict) -> Any:
    data = ad.device_model.custom_report(p.get("componentCriteria"), p.get("componentVariable"))
    return _answer(ad, p["requestId"], data)
