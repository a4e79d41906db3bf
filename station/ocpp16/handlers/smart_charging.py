"""OCPP 1.6 Smart Charging profile: SetChargingProfile (5.16), ClearChargingProfile (5.5) and
GetCompositeSchedule (5.7); the chargingProfile of RemoteStartTransaction is checked here too
(``remote_start_problem``). The profiles' meaning is station/core/charging.py, their keeping and
application station/charging.py (``adapter.charging``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.charging import ChargingService
from station.core.charging import Capabilities, ChargingProfile, ProfileError, problems
from station.core.clock import iso
from station.ocpp16.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("SmartCharging")

UNIT_WORDS = {"Current": "A", "Power": "W"}


def capabilities(ad: Ocpp16Adapter) -> Capabilities:
    """What the configuration keys allow."""
    units = {UNIT_WORDS[w.strip()] for w in ad.keys.get("ChargingScheduleAllowedChargingRateUnit").split(",")
             if w.strip() in UNIT_WORDS}
    return Capabilities(
        max_stack_level=ad.keys.int("ChargeProfileMaxStackLevel"),
        allowed_units=frozenset(units),
        max_periods=ad.keys.int("ChargingScheduleMaxPeriods"),
        max_installed=ad.keys.int("MaxChargingProfilesInstalled"),
    )


def _check(ad: Ocpp16Adapter, cid: int, cp: dict, remote_start: bool) -> tuple[ChargingProfile | None, str | None]:
    try:
        p = ChargingProfile.from_ocpp(cid, cp, ad.scheduler.now())
    except ProfileError as e:
        return None, str(e)
    why = problems(p, connector_ids=ad.station.connectors, caps=capabilities(ad), running=ad.charging.running(),
                   installed=ad.charging.profiles, remote_start=remote_start)
    return p, why


def remote_start_problem(ad: Ocpp16Adapter, cid: int | None, cp: dict) -> str | None:
    """Why a RemoteStartTransaction's chargingProfile makes it Rejected (None: usable). It must be
    a TxProfile without transactionId that passes the checks of SetChargingProfile."""
    if cp.get("chargingProfilePurpose") != "TxProfile":
        return "the chargingProfile of a remote start must be a TxProfile"
    _, why = _check(ad, cid or 0, cp, remote_start=True)
    return why


@routes.on("SetChargingProfile")
async def set_charging_profile(ad: Ocpp16Adapter, p: dict) -> dict:
    p_, why = _check(ad, p["connectorId"], p["csChargingProfiles"], remote_start=False)
    if why or p_ is None:
        ad.log.info("SetChargingProfile Rejected: %s", why)
        return {"status": "Rejected"}
    ad.charging.install(p_)
    return {"status": "Accepted"}


@routes.on("ClearChargingProfile")
async def clear_charging_profile(ad: Ocpp16Adapter, p: dict) -> dict:
    gone = ad.charging.clear(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"), p.get("stackLevel"))
    return {"status": "Accepted" if gone else "Unknown"}


@routes.on("GetCompositeSchedule")
async def get_composite_schedule(ad: Ocpp16Adapter, p: dict) -> dict:
    cid = p["connectorId"]
    unit = p.get("chargingRateUnit", "A")
    if (cid != 0 and cid not in ad.station.connectors) or unit not in capabilities(ad).allowed_units:
        return {"status": "Rejected"}
    composite = ad.charging.composite(cid, int(p["duration"]))
    return {"status": "Accepted", "connectorId": cid, "scheduleStart": iso(composite.start),
            "chargingSchedule": composite.to_ocpp(unit)}


def service(ad: Ocpp16Adapter) -> ChargingService:
    """The adapter's smart charging service (``adapter.charging``), limited by its configuration keys."""
    return ChargingService(ad.station, ad.store, ad.scheduler, ad.log, capabilities=lambda: capabilities(ad))
