"""Reservations (OCPP 1.6 sections 3.13, 5.13, 5.2): the rules, pure.

A reservation holds a connector (or, on connector 0, any connector) for one idTag until a
wall-clock expiry. This module says whether a ReserveNow can be accepted given the connectors'
conditions, which connector shows Reserved, who may use a reserved connector, and which
reservation a starting transaction uses. The driver (station/station.py) keeps the book, arms the
expiry timer and persists it; the session (station/core/session.py) refuses other idTags at a
connector that shows Reserved.

Connector 0: the station keeps enough connectors free for its connector-0 reservations. While
more connectors are free than connector-0 reservations exist, none shows Reserved; when only as
many are free as reservations exist, those connectors show Reserved (and refuse other idTags).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from station.core.auth import same_id_tag
from station.core.clock import iso, parse_iso


class ReservationStatus(enum.StrEnum):
    """The answer to ReserveNow (1.6 ReservationStatus; 2.0.1 ReserveNowStatusEnumType alike)."""

    Accepted = "Accepted"
    Faulted = "Faulted"
    Occupied = "Occupied"
    Rejected = "Rejected"
    Unavailable = "Unavailable"


class Condition(enum.StrEnum):
    """What a connector is, as far as a reservation cares (its reservations left out)."""

    Free = "free"  # usable, no driver, no transaction (a cable alone does not occupy it)
    Occupied = "occupied"  # a transaction, a driver identified, a transaction starting or finishing
    Faulted = "faulted"
    Unavailable = "unavailable"


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    connector_id: int  # 0: any connector of the station
    id_tag: str
    expiry: datetime  # wall-clock time
    parent_id_tag: str | None = None

    def expired(self, now: datetime) -> bool:
        return now >= self.expiry

    def may_use(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """May a driver with ``id_tag`` (whose parent is ``parent_id_tag``) use this reservation?"""
        return may_use(self.id_tag, self.parent_id_tag, id_tag, parent_id_tag)

    def to_store(self) -> dict:
        return {"connector_id": self.connector_id, "id_tag": self.id_tag, "expiry": iso(self.expiry),
                "parent_id_tag": self.parent_id_tag}

    @classmethod
    def from_store(cls, reservation_id: int, d: dict) -> Reservation:
        return cls(reservation_id, int(d["connector_id"]), str(d["id_tag"]), parse_iso(d["expiry"]),
                   d.get("parent_id_tag"))


def may_use(reserved_tag: str, reserved_parent: str | None, id_tag: str, parent_id_tag: str | None) -> bool:
    """The reserved idTag itself, or (5.13) any idTag whose parentIdTag is the reservation's parentIdTag."""
    if same_id_tag(id_tag, reserved_tag):
        return True
    return bool(reserved_parent) and same_id_tag(parent_id_tag, reserved_parent)


@dataclass
class ReservationBook:
    """The station's reservations by id."""

    by_id: dict[int, Reservation] = field(default_factory=dict)

    def specific(self) -> dict[int, Reservation]:
        """connector -> its own (not connector 0) reservation."""
        return {r.connector_id: r for r in self.by_id.values() if r.connector_id}

    def zero(self, excluding: int | None = None) -> list[Reservation]:
        return sorted((r for r in self.by_id.values() if not r.connector_id and r.reservation_id != excluding),
                      key=lambda r: r.reservation_id)

    def decide(self, new: Reservation, conditions: dict[int, Condition], station: Condition,
               zero_supported: bool) -> ReservationStatus:
        """ReserveNow: may ``new`` be made? A reservation with the same id is replaced, so it is left
        out of the judgement. ``conditions``: every connector's; ``station``: connector 0's."""
        S = ReservationStatus
        others = {c: r for c, r in self.specific().items() if r.reservation_id != new.reservation_id}
        zeros = self.zero(excluding=new.reservation_id)
        free = [c for c, cond in conditions.items() if cond is Condition.Free and c not in others]
        if station is Condition.Faulted:
            return S.Faulted
        if station is Condition.Unavailable:
            return S.Unavailable
        cid = new.connector_id
        if cid == 0:
            if not zero_supported:
                return S.Rejected
            if len(free) > len(zeros):
                return S.Accepted
            taken = [cond for c, cond in conditions.items() if c not in free]
            if any(cond is Condition.Occupied for cond in taken) or others or zeros:
                return S.Occupied
            if any(cond is Condition.Faulted for cond in taken):
                return S.Faulted
            if any(cond is Condition.Unavailable for cond in taken):
                return S.Unavailable
            return S.Occupied
        cond = conditions.get(cid)
        if cond is None:
            return S.Rejected
        if cond is Condition.Faulted:
            return S.Faulted
        if cond is Condition.Unavailable:
            return S.Unavailable
        if cond is Condition.Occupied or cid in others:
            return S.Occupied
        if len([c for c in free if c != cid]) < len(zeros):
            return S.Occupied  # the connector is one the station keeps free for a connector-0 reservation
        return S.Accepted

    def add(self, r: Reservation) -> Reservation | None:
        """Make (or replace: same id) a reservation; returns the one it replaced."""
        old = self.by_id.get(r.reservation_id)
        self.by_id[r.reservation_id] = r
        return old

    def cancel(self, reservation_id: int) -> Reservation | None:
        return self.by_id.pop(reservation_id, None)

    def expired(self, now: datetime) -> list[Reservation]:
        """Remove and return the reservations whose expiry has passed."""
        gone = [r for r in self.by_id.values() if r.expired(now)]
        for r in gone:
            del self.by_id[r.reservation_id]
        return gone

    def next_expiry(self) -> datetime | None:
        return min((r.expiry for r in self.by_id.values()), default=None)

    def held(self, conditions: dict[int, Condition]) -> dict[int, Reservation]:
        """connector -> the reservation it shows (Reserved): its own, or a connector-0 one when only as
        many connectors are free as connector-0 reservations exist."""
        out = self.specific()
        zeros = self.zero()
        free = sorted(c for c, cond in conditions.items() if cond is Condition.Free and c not in out)
        if zeros and len(free) <= len(zeros):
            out.update(zip(free, zeros, strict=False))
        return out

    def used_by(self, connector_id: int, id_tag: str, parent_id_tag: str | None,
                reservation_id: int | None = None) -> Reservation | None:
        """The reservation a transaction starting now at ``connector_id`` for ``id_tag`` uses, if
        any: the one the session attached, else the connector's own, else a connector-0 one for the
        idTag (3.13: it ends when the idTag starts a transaction on the reserved connector, or on
        any connector when connector 0 was reserved)."""
        if reservation_id is not None and reservation_id in self.by_id:
            return self.by_id[reservation_id]
        own = self.specific().get(connector_id)
        if own is not None and own.may_use(id_tag, parent_id_tag):
            return own
        return next((r for r in self.zero() if r.may_use(id_tag, parent_id_tag)), None)
