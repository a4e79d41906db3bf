"""OCPP 1.6 Local Auth List Management profile: GetLocalListVersion (5.10) and SendLocalList (5.15).

The list itself, its rules and its atomic update are version independent (station/local_list.py,
station/core/local_list.py); this module speaks 1.6. With LocalAuthListEnabled false the station
has no list in use and answers as a station without one: GetLocalListVersion -1, SendLocalList
NotSupported (the entries it had are kept, and used again once the key is true).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.core.auth import IdTagInfo
from station.core.local_list import ListEntry, ListLimits, UpdateOutcome, UpdateType
from station.local_list import LocalList
from station.ocpp16.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("LocalAuthListManagement")

STATUS = {
    UpdateOutcome.ACCEPTED: "Accepted",
    UpdateOutcome.FAILED: "Failed",
    UpdateOutcome.VERSION_MISMATCH: "VersionMismatch",
}
UPDATE_TYPE = {"Full": UpdateType.FULL, "Differential": UpdateType.DIFFERENTIAL}


def local_list(ad: Ocpp16Adapter) -> LocalList:
    return LocalList(ad.store, ad.station.local_list, ad.log)


def enabled(ad: Ocpp16Adapter) -> bool:
    """LocalAuthListEnabled is true (a build without the profile's keys has no list)."""
    return "LocalAuthListEnabled" in ad.keys.defs and ad.keys.bool("LocalAuthListEnabled")


@routes.on("GetLocalListVersion")
async def get_local_list_version(ad: Ocpp16Adapter, p: dict) -> dict:
    if not enabled(ad):
        return {"listVersion": -1}
    return {"listVersion": local_list(ad).version()}


@routes.on("SendLocalList")
async def send_local_list(ad: Ocpp16Adapter, p: dict) -> dict:
    if not enabled(ad):
        ad.log.info("SendLocalList: LocalAuthListEnabled is false: NotSupported")
        return {"status": "NotSupported"}
    items = [
        ListEntry(str(e["idTag"]), IdTagInfo.from_ocpp(e["idTagInfo"]) if "idTagInfo" in e else None)
        for e in p.get("localAuthorizationList") or []
    ]
    limits = ListLimits(ad.keys.int("LocalAuthListMaxLength"), ad.keys.int("SendLocalListMaxLength"))
    plan = local_list(ad).update(UPDATE_TYPE[p["updateType"]], int(p["listVersion"]), items, limits)
    return {"status": STATUS[plan.outcome]}
