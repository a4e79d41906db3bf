"""The station's Local Authorization List, kept in the store: version independent (the 1.6
handlers in station/ocpp16/handlers/local_list.py use it; 2.0.1's can too).

The entries live in the store's ``auth`` table (kind ``local``), the version in its key/value
table (namespace ``local_list``); the station keeps the same entries in memory
(``Station.local_list``, what authorization decisions read). An update (the rules are in
station/core/local_list.py) is written in one store transaction: a failure or a power cut in the
middle of it leaves the old list and the old version, in the store and in memory alike; memory is
changed only once the transaction is committed.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from dataclasses import asdict

from station.core.auth import IdTagInfo
from station.core.local_list import (
    ListEntry,
    ListLimits,
    Plan,
    UpdateOutcome,
    UpdateType,
    applied,
    list_version,
    plan_update,
)
from station.store import Store

NS = "local_list"
KIND = "local"  # the store's auth table kind of the list's entries


class LocalList:
    """The list's store and in-memory copy, changed together."""

    def __init__(self, store: Store, entries: MutableMapping[str, IdTagInfo], log: logging.Logger,
                 empty_is_zero: bool = True) -> None:
        self.store = store
        self.entries = entries  # the station's dict: updated in place
        self.log = log
        self.empty_is_zero = empty_is_zero  # 1.6: an empty list is version 0; 2.0.1 keeps the version given

    @property
    def stored_version(self) -> int:
        try:
            return int(self.store.get(NS, "version", 0))
        except (TypeError, ValueError):
            return 0

    def version(self) -> int:
        """The version the list reports (1.6: 0 when empty)."""
        return list_version(self.entries, self.stored_version, self.empty_is_zero)

    def update(self, update_type: UpdateType, version: int, items: Sequence[ListEntry], limits: ListLimits) -> Plan:
        """Check and apply one update; returns the plan with its outcome. A write that fails
        leaves everything as it was and makes the outcome FAILED."""
        plan = plan_update(self.entries, self.stored_version, update_type, version, items, limits, self.empty_is_zero)
        if plan.outcome is not UpdateOutcome.ACCEPTED:
            self.log.warning("local list update (%s, version %d) refused: %s", update_type.value, version, plan.reason)
            return plan
        try:
            with self.store.atomic():
                if plan.replace:
                    self.store.auth_clear(KIND)
                for tag in plan.remove:
                    self.store.auth_remove(KIND, tag)
                for tag, info in plan.put.items():
                    self.store.auth_put(KIND, tag, asdict(info))
                self.store.put(NS, "version", plan.version)
        except Exception as e:  # the transaction was rolled back: the old list stands
            self.log.error("local list update (%s, version %d) could not be written (%s); the list stays at "
                           "version %d", update_type.value, version, e, self.version())
            return Plan(UpdateOutcome.FAILED, self.version(), reason=f"write failed: {e}")
        after = applied(self.entries, plan)
        self.entries.clear()
        self.entries.update(after)
        self.log.info("local list updated (%s): version %d, %d entries", update_type.value, self.version(),
                      len(self.entries))
        return plan
