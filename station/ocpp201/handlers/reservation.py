"""OCPP 2.0.1 block H (reservation): H01 ReserveNow, H02 CancelReservation, H04
ReservationStatusUpdate.

The rules (who may use a reservation, reservations of no EVSE in particular, Occupied / Faulted /
Unavailable) are the shared engine's (station/core/reservation.py) and the book, its expiry timer
and its persistence the station driver's, as for 1.6; this module speaks 2.0.1:

- ReservationCtrlr.Enabled false: ReserveNow and CancelReservation are Rejected.
- ``evseId`` names the EVSE (its connector of ``connectorType`` when one is named); no ``evseId``
  reserves any EVSE when ReservationCtrlr.NonEvseSpecific is true, else Rejected. An EVSE the
  station does not have, or a connectorType it does not have there, is Rejected. (A reservation of
  no EVSE but of a connectorType is made when every connector has that type.)
- An EVSE with a cable in is Occupied (as its status says), one with a transaction too.
- A ReserveNow with the id of a reservation replaces it (its EVSE is reported Reserved again).
- The reservation serves its ``idToken`` and any token of its ``groupIdToken``.
- When a reservation ends unused the CSMS hears ReservationStatusUpdate: Expired when its
  expiryDateTime passed (also while the station was off), Removed when its EVSE became Faulted
  or Unavailable. Both go through the persistent outbox, so they survive a restart. A transaction
  that uses a reservation names it in its TransactionEvent Started (transaction_event.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.core.clock import parse_iso
from station.core.reservation import Reservation
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Reservation")

REJECTED = {"status": "Rejected"}


def connector_type(ad: Ocpp201Adapter, cid: int) -> str:
    evse_id, connector_id = ad.address(cid)
    return ad.text("Connector", "ConnectorType", evse=evse_id, connector=connector_id)


@routes.on("ReserveNow")
async def reserve_now(ad: Ocpp201Adapter, p: dict) -> Any:
    if not ad.flag("ReservationCtrlr", "Enabled"):
        ad.log.info("ReserveNow: ReservationCtrlr.Enabled is false: Rejected")
        return REJECTED
    try:
        expiry = parse_iso(p["expiryDateTime"])
    except (ValueError, TypeError, OverflowError):
        return REJECTED
    wanted = p.get("connectorType")
    evse_id = p.get("evseId")
    if evse_id is not None:
        cids = ad.connectors_of(evse_id)
        if wanted is not None:
            cids = [c for c in cids if connector_type(ad, c) == wanted]
        if not cids:
            ad.log.info("ReserveNow: EVSE %s has no connector%s: Rejected", evse_id, f" of type {wanted}" if wanted else "")
            return REJECTED
        cid = cids[0]
    else:
        if not ad.flag("ReservationCtrlr", "NonEvseSpecific"):
            ad.log.info("ReserveNow without evseId; ReservationCtrlr.NonEvseSpecific is false: Rejected")
            return REJECTED
        if wanted is not None and any(connector_type(ad, c) != wanted for c in ad.station.connectors):
            ad.log.info("ReserveNow of connector type %s without evseId: not every connector has it: Rejected", wanted)
            return REJECTED
        cid = 0
    group = (p.get("groupIdToken") or {}).get("idToken")
    replacing = p["id"] in ad.station.reservations.by_id
    status = ad.station.reserve_now(cid, p["idToken"]["idToken"], expiry, p["id"], parent_id_tag=group,
                                    zero_supported=True)
    if status == "Accepted" and replacing and cid:
        async def again() -> None:
            ad.status.trigger([cid])  # a replaced reservation: its EVSE is reported Reserved again

        return {"status": status}, again
    return {"status": status}


@routes.on("CancelReservation")
async def cancel_reservation(ad: Ocpp201Adapter, p: dict) -> dict:
    if not ad.flag("ReservationCtrlr", "Enabled"):
        return REJECTED
    return {"status": "Accepted" if ad.station.cancel_reservation(p["reservationId"]) else "Rejected"}


class ReservationService:
    """Tells the CSMS about reservations that ended unused (ReservationStatusUpdate)."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        ad.station.reservations_follow_availability = True
        ad.station.reservations_cable_occupies = True
        ad.station.reservation_ended = self.ended

    def ended(self, r: Reservation, why: str) -> None:
        self.ad.outbox.add("ReservationStatusUpdate", {"reservationId": r.reservation_id,
                                                       "reservationUpdateStatus": why})


def service(ad: Ocpp201Adapter) -> ReservationService:
    return ReservationService(ad)
