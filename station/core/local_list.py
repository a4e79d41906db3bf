"""The Local Authorization List's update rules (OCPP 1.6 sections 3.5.3, 5.10 and 5.15; the same
rules serve OCPP 2.0.1's use cases D01 and D02): pure, no I/O.

:func:`plan_update` takes the list as it is (entries and version), one update sent by the CSMS
(full or differential, its version, its entries) and the station's limits, and says what to do:
refuse it (and why), or the writes that make the new list — the whole list replaced, or entries
put and removed — and the version the list then has. The caller makes those writes in one store
transaction (station/local_list.py), so the update happens entirely or not at all.

Rules:
- A full update replaces the list; an entry of a full update must carry its authorization info.
  An empty full update empties the list.
- A differential update puts the entries that carry info (added or replaced) and removes those
  without; a differential update without entries leaves the entries as they are. Its version
  must be newer than the list's: otherwise the answer is a version mismatch and nothing changes.
- The version of an empty list is 0 ("0 indicates that the local authorization list is empty",
  5.10), whatever version the update that emptied it carried; a non-empty list has a version of
  1 or more, so a full update with entries and a version below 1 fails. That is 1.6; in 2.0.1
  (``empty_is_zero`` False) a list keeps the version of the update that made it, empty or not
  (D01.FR.05: a differential update without entries still sets the version).
- An update with more entries than the station takes in one message (``send_max_length``), with
  an id tag twice (in any case: idTags are case-insensitive, station/core/auth.py), or that would
  make the list longer than ``max_length`` fails and changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from station.core.auth import IdTagInfo, IdTagMap, id_tag_key


class UpdateType(enum.Enum):
    FULL = "full"
    DIFFERENTIAL = "differential"


class UpdateOutcome(enum.Enum):
    ACCEPTED = "accepted"
    FAILED = "failed"
    VERSION_MISMATCH = "version_mismatch"


@dataclass(frozen=True)
class ListEntry:
    """One entry of an update: an id tag and its authorization info (None: remove it; only in a
    differential update)."""

    id_tag: str
    info: IdTagInfo | None


@dataclass(frozen=True)
class ListLimits:
    max_length: int  # entries the list may hold (LocalAuthListMaxLength)
    send_max_length: int  # entries one update may carry (SendLocalListMaxLength)


@dataclass(frozen=True)
class Plan:
    """What an update does. ``outcome`` is not ACCEPTED: nothing is written (``reason`` says
    why). ACCEPTED: when ``replace`` the list becomes exactly ``put``; else ``put`` entries are
    written over and ``remove`` ones deleted. ``version`` is the list's version afterwards."""

    outcome: UpdateOutcome
    version: int
    replace: bool = False
    put: dict[str, IdTagInfo] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    reason: str = ""


def list_version(entries: Mapping[str, IdTagInfo], stored_version: int, empty_is_zero: bool = True) -> int:
    """The version a list reports: the version it was given; 0 when it is empty (1.6)."""
    return stored_version if entries or not empty_is_zero else 0


def plan_update(
    entries: Mapping[str, IdTagInfo],
    stored_version: int,
    update_type: UpdateType,
    version: int,
    items: Sequence[ListEntry],
    limits: ListLimits,
    empty_is_zero: bool = True,
) -> Plan:
    """Check an update against the list as it is and say what it writes (see the module's rules)."""
    current = list_version(entries, stored_version, empty_is_zero)

    def refuse(outcome: UpdateOutcome, reason: str) -> Plan:
        return Plan(outcome, current, reason=reason)

    if len(items) > limits.send_max_length:
        return refuse(UpdateOutcome.FAILED, f"{len(items)} entries in one update; this station takes at most "
                                            f"{limits.send_max_length}")
    seen: set[str] = set()
    for item in items:
        if id_tag_key(item.id_tag) in seen:  # idTags are case-insensitive: "A" and "a" are one
            return refuse(UpdateOutcome.FAILED, f"id tag {item.id_tag!r} is in the update twice")
        seen.add(id_tag_key(item.id_tag))

    if update_type is UpdateType.FULL:
        missing = [i.id_tag for i in items if i.info is None]
        if missing:
            return refuse(UpdateOutcome.FAILED, f"a full update needs the info of every id tag ({missing[0]!r} has none)")
        if not items:
            return Plan(UpdateOutcome.ACCEPTED, 0 if empty_is_zero else version, replace=True)
        if version < 1:
            return refuse(UpdateOutcome.FAILED, f"version {version} for a list with entries (an empty list is version 0)")
        if len(items) > limits.max_length:
            return refuse(UpdateOutcome.FAILED, f"{len(items)} entries; the list holds at most {limits.max_length}")
        return Plan(UpdateOutcome.ACCEPTED, version, replace=True, put={i.id_tag: i.info for i in items if i.info})

    if version <= current:
        return refuse(UpdateOutcome.VERSION_MISMATCH, f"version {version} is not newer than the list's ({current})")
    put = {i.id_tag: i.info for i in items if i.info is not None}
    known = {id_tag_key(t) for t in entries}
    remove = tuple(i.id_tag for i in items if i.info is None and id_tag_key(i.id_tag) in known)
    after = len(known - {id_tag_key(t) for t in remove} | {id_tag_key(t) for t in put})
    if after > limits.max_length:
        return refuse(UpdateOutcome.FAILED, f"the list would hold {after} entries; at most {limits.max_length}")
    return Plan(UpdateOutcome.ACCEPTED, version if after or not empty_is_zero else 0, put=put, remove=remove)


def applied(entries: Mapping[str, IdTagInfo], plan: Plan) -> IdTagMap[IdTagInfo]:
    """The list after an accepted plan (the list as it is when the plan was refused)."""
    if plan.outcome is not UpdateOutcome.ACCEPTED:
        return IdTagMap(entries)
    out: IdTagMap[IdTagInfo] = IdTagMap() if plan.replace else IdTagMap(entries)
    for tag in plan.remove:
        out.pop(tag, None)
    out.update(plan.put)
    return out
