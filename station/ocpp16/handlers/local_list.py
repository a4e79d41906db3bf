"""OCPP 1.6 Local Auth List Management, not supported yet: the answers 1.6 asks of a station
without a local list (GetLocalListVersion -1, SendLocalList NotSupported)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.ocpp16.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("LocalAuthListManagement")


@routes.on("GetLocalListVersion")
async def get_local_list_version(ad: Ocpp16Adapter, p: dict) -> dict:
    return {"listVersion": -1}


@routes.on("SendLocalList")
async def send_local_list(ad: Ocpp16Adapter, p: dict) -> dict:
    return {"status": "NotSupported"}
