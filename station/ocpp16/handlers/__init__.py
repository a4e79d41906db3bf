"""OCPP 1.6 handlers of CSMS requests, one module per feature profile, behind a routing table.

Each profile module has a ``routes = Routes("Profile")`` and registers its handlers with
``@routes.on("Action")``; a handler is ``async def handler(adapter, payload) -> answer``, where the
answer may be ``(payload, after)`` (``after()`` runs once the answer is on the wire). The adapter
merges the tables of the profiles it supports (``routing_table``): a new profile is a new module
added to that list, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

Handler = Callable[["Ocpp16Adapter", dict], Awaitable[Any]]


class Routes:
    """The action -> handler table of one feature profile."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.handlers: dict[str, Handler] = {}

    def on(self, action: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if action in self.handlers:
                raise ValueError(f"{self.profile}: {action} has two handlers")
            self.handlers[action] = fn
            return fn

        return register


def routing_table(*profiles: Routes) -> dict[str, Handler]:
    """One table for the supported profiles; an action claimed by two profiles is a bug."""
    table: dict[str, Handler] = {}
    for routes in profiles:
        for action, fn in routes.handlers.items():
            if action in table:
                raise ValueError(f"{action} is handled by two profiles")
            table[action] = fn
    return table
