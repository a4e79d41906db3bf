"""OCPP 1.6 Reservation profile: ReserveNow (section 5.13) and CancelReservation (5.2).

The rules (who may use a reserved connector, connector 0, Occupied / Faulted / Unavailable) are
in station/core/reservation.py, the book, its expiry timer and its persistence in the station
driver; this module only reads the 1.6 request and words the answer. ReserveNow on connector 0
is Rejected when ReserveConnectorZeroSupported is false; an expiryDate that has passed, or a
connector this station does not have, is Rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.core.clock import parse_iso
from station.ocpp16.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("Reservation")


@routes.on("ReserveNow")
async def reserve_now(ad: Ocpp16Adapter, p: dict) -> dict:
    cid = p["connectorId"]
    if cid != 0 and cid not in ad.station.connectors:
        return {"status": "Rejected"}
    try:
        expiry = parse_iso(p["expiryDate"])
    except (ValueError, TypeError, OverflowError):
        return {"status": "Rejected"}  # the schema checked the format; a date out of range is refused
    status = ad.station.reserve_now(
        cid, p["idTag"], expiry, p["reservationId"], parent_id_tag=p.get("parentIdTag"),
        zero_supported=ad.keys.bool("ReserveConnectorZeroSupported"),
    )
    return {"status": status}


@routes.on("CancelReservation")
async def cancel_reservation(ad: Ocpp16Adapter, p: dict) -> dict:
    return {"status": "Accepted" if ad.station.cancel_reservation(p["reservationId"]) else "Rejected"}
