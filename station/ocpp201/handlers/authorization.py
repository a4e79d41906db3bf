"""OCPP 2.0.1 block C (authorization): C11 ClearCache (Rejected when AuthCacheCtrlr.Enabled is
false), and the block's service: it keeps the station's authorization rules in step with the
controllers that make them (station/ocpp201/authorization.py) and reports the cache's size
(AuthCacheCtrlr.Storage, bytes)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from station.ocpp201.authorization import VARIABLES
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Authorization")


@routes.on("ClearCache")
async def clear_cache(ad: Ocpp201Adapter, p: dict) -> dict:
    if not ad.flag("AuthCacheCtrlr", "Enabled"):
        return {"status": "Rejected"}
    ad.station.clear_cache()
    return {"status": "Accepted"}


class AuthorizationService:
    """Re-reads the rules when one of their variables changes; reports the cache's size."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        for component, variable in VARIABLES:
            ad.dm.subscribe(component, variable, self._changed)
        ad.dm.provide("AuthCacheCtrlr", "Storage", self.storage)

    def _changed(self, ck: tuple, vk: tuple, value: Any) -> None:
        self.ad.apply_variables()

    def storage(self) -> int:
        """Bytes the authorization cache holds (its entries as the store keeps them)."""
        return sum(len(tag) + len(json.dumps(asdict(info))) for tag, info in self.ad.station.cache.items())


def service(ad: Ocpp201Adapter) -> AuthorizationService:
    return AuthorizationService(ad)
