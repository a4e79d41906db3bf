"""OCPP 2.0.1 handlers of CSMS requests, one module per functional block of Part 2
(provisioning, authorization, transactions, remote_control, availability, ...).

Each module has ``routes = Routes("Block")`` and registers ``@routes.on("Action")`` handlers:
``async def handler(adapter, payload) -> answer`` where the answer may be ``(payload, after)``
(``after()`` runs once the answer is on the wire), exactly as for 1.6. The adapter merges the
tables of every module of this package (``blocks()``): a new block is a new module, nothing else
changes.

A module that needs state or timers of its own (a service: local list, charging profiles,
firmware) defines ``service(adapter) -> object``; the adapter makes it once, keeps it as
``adapter.services[module name]`` and calls its optional ``start()`` / ``stop()`` and
``registered()`` (BootNotification Accepted) and ``reconnected()`` (the link is back, the
registration still Accepted) with its own.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from station.ocpp16.handlers import Handler, Routes, routing_table

__all__ = ["Handler", "Routes", "blocks", "routing_table"]


def blocks() -> list[ModuleType]:
    """Every handler module of this package, in name order."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]
