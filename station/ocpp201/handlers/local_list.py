"""OCPP 2.0.1 block D (local authorization list): D01 SendLocalList (Full / Differential) and
D02 GetLocalListVersion.

The list, its update rules (version numbers, Full and Differential, the atomic write) and the use
of the list in authorization are the shared engine's (station/local_list.py,
station/core/local_list.py, station/core/auth.py); this module speaks 2.0.1:

- The list has the versionNumber of the last update accepted, also when it is empty (unlike 1.6,
  where an empty list is version 0); a versionNumber of 0 or less fails (D01.FR.18); a
  Differential update must be newer than the list (else VersionMismatch) and without entries
  changes only the version.
- LocalAuthListCtrlr.Enabled false: GetLocalListVersion answers 0 and SendLocalList Failed (the
  entries stay, and are used again once it is true).
- An update with more entries than LocalAuthListCtrlr.ItemsPerMessage, or larger than
  BytesPerMessage, fails; a list of more than Entries' maxLimit entries fails.
- Entries are kept by idToken value; an entry's idTokenInfo becomes the shared IdTagInfo
  (groupIdToken as the parent, cacheExpiryDateTime as the expiry, statuses other than the
  shared ones refuse like Invalid).
- LocalAuthListCtrlr.Entries and Storage report the list's size now.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from station.core.local_list import ListEntry, ListLimits, UpdateOutcome, UpdateType
from station.local_list import LocalList
from station.ocpp201 import vocabulary
from station.ocpp201.device_model import LOCAL_LIST_MAX
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("LocalAuthorizationListManagement")

STATUS = {
    UpdateOutcome.ACCEPTED: "Accepted",
    UpdateOutcome.FAILED: "Failed",
    UpdateOutcome.VERSION_MISMATCH: "VersionMismatch",
}
UPDATE_TYPE = {"Full": UpdateType.FULL, "Differential": UpdateType.DIFFERENTIAL}


def local_list(ad: Ocpp201Adapter) -> LocalList:
    return LocalList(ad.store, ad.station.local_list, ad.log, empty_is_zero=False)


@routes.on("GetLocalListVersion")
async def get_local_list_version(ad: Ocpp201Adapter, p: dict) -> dict:
    if not ad.flag("LocalAuthListCtrlr", "Enabled"):
        return {"versionNumber": 0}
    return {"versionNumber": local_list(ad).version()}


@routes.on("SendLocalList")
async def send_local_list(ad: Ocpp201Adapter, p: dict) -> dict:
    if not ad.flag("LocalAuthListCtrlr", "Enabled"):
        ad.log.info("SendLocalList: LocalAuthListCtrlr.Enabled is false: Failed")
        return {"status": "Failed"}
    if p["versionNumber"] <= 0:
        ad.log.warning("SendLocalList versionNumber %s: must be above 0: Failed", p["versionNumber"])
        return {"status": "Failed"}  # D01.FR.18
    size = len(json.dumps(p, separators=(",", ":")))
    limit = ad.integer("LocalAuthListCtrlr", "BytesPerMessage")
    if limit and size > limit:
        ad.log.warning("SendLocalList of %d bytes; LocalAuthListCtrlr.BytesPerMessage is %d: Failed", size, limit)
        return {"status": "Failed"}
    items = [
        ListEntry(str(e["idToken"]["idToken"]),
                  vocabulary.id_tag_info(e["idTokenInfo"]) if "idTokenInfo" in e else None)
        for e in p.get("localAuthorizationList") or []
    ]
    limits = ListLimits(LOCAL_LIST_MAX, ad.integer("LocalAuthListCtrlr", "ItemsPerMessage"))
    plan = local_list(ad).update(UPDATE_TYPE[p["updateType"]], int(p["versionNumber"]), items, limits)
    return {"status": STATUS[plan.outcome]}


class LocalListService:
    """Reports the list's size: LocalAuthListCtrlr.Entries and Storage (bytes)."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        ad.dm.provide("LocalAuthListCtrlr", "Entries", lambda: len(ad.station.local_list))
        ad.dm.provide("LocalAuthListCtrlr", "Storage", self.storage)

    def storage(self) -> int:
        return sum(len(tag) + len(json.dumps(asdict(info))) for tag, info in self.ad.station.local_list.items())


def service(ad: Ocpp201Adapter) -> LocalListService:
    return LocalListService(ad)
