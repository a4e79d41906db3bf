"""OCPP 2.0.1 handlers of CSMS requests, one module per functional block of Part 2
(provisioning, authorization, transactions, remote_control, availability, ...).

Each module has ``routes = Routes("Block")`` and registers ``@routes.on("Action")`` handlers:
``async def handler(adapter, payload) -> answer`` where the answer may be ``(payload, after)``
(``after()`` runs once the answer is on the wire), exactly as for 1.6. The adapter merges the
tables of the blocks it supports with ``routing_table``.
"""

from __future__ import annotations

from station.ocpp16.handlers import Handler, Routes, routing_table

__all__ = ["Handler", "Routes", "routing_table"]
