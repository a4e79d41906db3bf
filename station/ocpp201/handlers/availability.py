"""OCPP 2.0.1 block G (availability): ChangeAvailability for the station, an EVSE or one
connector; Scheduled while a transaction runs there (the change follows when it ends). The
station's availability and each connector's persist across a restart (the driver keeps them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Availability")


@routes.on("ChangeAvailability")
async def change_availability(ad: Ocpp201Adapter, p: dict) -> dict:
    operative = p["operationalStatus"] == "Operative"
    evse = p.get("evse")
    if evse is None or evse.get("id") == 0:
        return {"status": ad.station.change_availability(0, operative)}
    if "connectorId" in evse:
        cid = ad.connector_number(evse["id"], evse["connectorId"])
        targets = [cid] if cid is not None else []
    else:
        targets = ad.connectors_of(evse["id"])
    if not targets:
        return {"status": "Rejected"}
    answers = [ad.station.change_availability(c, operative) for c in targets]
    return {"status": "Scheduled" if "Scheduled" in answers else "Accepted"}
