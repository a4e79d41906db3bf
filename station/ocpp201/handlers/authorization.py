"""OCPP 2.0.1 block C requests: C11 ClearCache (Rejected when AuthCacheCtrlr.Enabled is false)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
