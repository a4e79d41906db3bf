"""OCPP 2.0.1 charging profiles in the engine's neutral terms (station/core/charging.py).

- ``from_wire``: a ChargingProfileType (SetChargingProfileRequest, RequestStartTransactionRequest)
  becomes a neutral ``ChargingProfile`` set on an EVSE (0: the station). Of its 1..3
  chargingSchedules the first is followed: the others are offers for an ISO 15118 EV to choose
  from, and this station does not speak ISO 15118; all are checked.
- ``check``: why K01 makes a SetChargingProfile Rejected, as a statusInfo ``(reasonCode,
  additionalInfo)``, or None.
- ``composite_schedule``: a neutral ``Composite`` as a CompositeScheduleType (K08) in A or W.
- ``PURPOSES``: the 2.0.1 purpose names <-> the engine's (ChargingStationMaxProfile is the
  engine's station limit, ChargingStationExternalConstraints its external constraints).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from station.core.charging import (
    EXTERNAL,
    MAX_PROFILE,
    TX_DEFAULT,
    TX_PROFILE,
    VOLTAGE_V,
    Capabilities,
    ChargingProfile,
    Composite,
    ProfileError,
    ProfileSet,
    SchedulePeriod,
    schedule_problems,
    tenths,
)
from station.core.clock import iso, parse_iso

PURPOSES = {"ChargingStationMaxProfile": MAX_PROFILE, "TxDefaultProfile": TX_DEFAULT, "TxProfile": TX_PROFILE,
            "ChargingStationExternalConstraints": EXTERNAL}
WIRE_PURPOSE = {v: k for k, v in PURPOSES.items()}
SOURCES = ("EMS", "Other", "SO", "CSO")  # ChargingLimitSourceEnumType


def from_wire(evse_id: int, cp: Mapping, installed_at: datetime, source: str = "CSO",
              transaction_id: str | None = None) -> ChargingProfile:
    """The neutral profile of a ChargingProfileType (schema-checked) set on ``evse_id``; a remote
    start's profile gets the ``transaction_id`` it was started with. Raises ProfileError."""
    try:
        sched = cp["chargingSchedule"][0]
        periods = tuple(SchedulePeriod(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
                        for p in sched["chargingSchedulePeriod"])
        purpose = PURPOSES[cp["chargingProfilePurpose"]]

        def when(v: str | None) -> datetime | None:
            return None if v is None else parse_iso(v)

        raw = dict(cp)
        tx_id = cp.get("transactionId")
        if tx_id is None and transaction_id is not None:
            tx_id = raw["transactionId"] = transaction_id
        return ChargingProfile(
            id=int(cp["id"]),
            connector_id=int(evse_id),
            stack_level=int(cp["stackLevel"]),
            purpose=purpose,
            kind=cp["chargingProfileKind"],
            unit=sched["chargingRateUnit"],
            periods=periods,
            installed_at=installed_at,
            recurrency=cp.get("recurrencyKind"),
            valid_from=when(cp.get("validFrom")),
            valid_to=when(cp.get("validTo")),
            transaction_id=tx_id,
            duration_s=sched.get("duration"),
            start_schedule=when(sched.get("startSchedule")),
            min_rate=sched.get("minChargingRate"),
            raw=raw,
            source=source,
        )
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ProfileError(f"unusable charging profile: {e}") from None


def to_wire(p: ChargingProfile) -> dict:
    """The ChargingProfileType to report (ReportChargingProfiles): as it was set."""
    return dict(p.raw)


def check(p: ChargingProfile, cp: Mapping, *, evse_ids: Iterable[int], caps: Capabilities,
          running: Mapping[int, int | str | None], installed: ProfileSet,
          remote_start: bool = False) -> tuple[str, str] | None:
    """Why K01 rejects ``p`` (``cp`` as it came, for its other schedules): (reasonCode,
    additionalInfo), or None when it can be installed. ``running``: EVSE -> its transaction's id."""
    evse = p.connector_id
    if evse != 0 and evse not in set(evse_ids):
        return "UnknownEvse", f"EVSE {evse} does not exist"
    if p.purpose == EXTERNAL:
        return "InvalidValue", "ChargingStationExternalConstraints are set by the station, not the CSMS (K01.FR.22)"
    if p.purpose == MAX_PROFILE:
        if evse != 0:
            return "InvalidValue", "a ChargingStationMaxProfile is set on evseId 0 only"
        if p.kind == "Relative":
            return "InvalidValue", "a ChargingStationMaxProfile cannot be Relative (K01.FR.38)"
    if p.purpose == TX_DEFAULT:
        # K01.FR.52 / FR.53: one stack level is either the station-wide default or EVSE-specific ones
        clash = [q.id for q in installed.profiles.values()
                 if q.purpose == TX_DEFAULT and q.id != p.id and q.stack_level == p.stack_level
                 and (q.connector_id == 0) != (evse == 0)]
        if clash:
            where = "a specific EVSE" if evse == 0 else "evseId 0"
            return "DuplicateProfile", f"TxDefaultProfile {clash[0]} on {where} has stackLevel {p.stack_level}"
    if p.purpose == TX_PROFILE:
        if evse == 0:
            return "InvalidValue", "a TxProfile is set on an EVSE, not on evseId 0 (K01.FR.16)"
        if remote_start:
            if cp.get("transactionId") is not None:
                return "InvalidValue", "the chargingProfile of a remote start has no transactionId"
        else:
            if p.transaction_id is None:
                return "MissingParam", "a TxProfile needs the transactionId (K01.FR.03)"
            if evse not in running:
                return "TxNotFound", f"no transaction on EVSE {evse} (K01.FR.09)"
            if running[evse] != p.transaction_id:
                return "TxNotFound", f"transaction {p.transaction_id} is not the one on EVSE {evse} (K01.FR.33)"
            if any(q.purpose == TX_PROFILE and q.id != p.id and q.stack_level == p.stack_level
                   and q.transaction_id == p.transaction_id for q in installed.profiles.values()):
                return "InvalidStackLevel", "another TxProfile of this transaction has this stackLevel (K01.FR.39)"
    if p.stack_level < 0 or p.stack_level > caps.max_stack_level:
        return "InvalidStackLevel", f"stackLevel {p.stack_level} is above ProfileStackLevel {caps.max_stack_level}"
    for sched in cp.get("chargingSchedule", []):
        unit = sched.get("chargingRateUnit")
        if unit not in caps.allowed_units:
            return "UnsupportedRateUnit", f"chargingRateUnit {unit} is not in SmartChargingCtrlr.RateUnit"
        if len(sched.get("chargingSchedulePeriod", [])) > caps.max_periods:
            return "InvalidSchedule", f"more periods than PeriodsPerSchedule ({caps.max_periods})"
        if any("phaseToUse" in x for x in sched.get("chargingSchedulePeriod", [])):
            return "InvalidSchedule", "phaseToUse: this station cannot switch phases (K01.FR.20)"
        if p.kind == "Relative" and "startSchedule" in sched:
            return "InvalidSchedule", "a Relative profile has no startSchedule (K01.FR.41)"
        if p.kind != "Relative" and "startSchedule" not in sched:
            return "InvalidSchedule", f"an {p.kind} profile needs a startSchedule (K01.FR.40)"
        try:
            other = replace(p, unit=unit, periods=tuple(SchedulePeriod(int(x["startPeriod"]), float(x["limit"]),
                                                                       x.get("numberPhases"))
                                                        for x in sched["chargingSchedulePeriod"]),
                            duration_s=sched.get("duration"))
        except (KeyError, TypeError, ValueError) as e:
            return "InvalidSchedule", f"unusable chargingSchedule: {e}"
        why = schedule_problems(other, caps)
        if why is not None:
            return "InvalidSchedule", why
    if installed.count_after(p) > caps.max_installed:
        return "TooManyElements", f"EntriesChargingProfiles maxLimit ({caps.max_installed}) reached"
    return None


def composite_schedule(evse_id: int, c: Composite, unit: str) -> dict:
    """The CompositeScheduleType of GetCompositeScheduleResponse in ``unit`` (A or W); limits
    with one decimal, never above what the station computed."""
    periods = []
    for x in c.periods:
        value = x.amps if unit == "A" else x.amps * VOLTAGE_V * x.phases
        periods.append({"startPeriod": x.start_s, "limit": tenths(value), "numberPhases": x.phases})
    return {"evseId": evse_id, "duration": c.duration_s, "scheduleStart": iso(c.start), "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods}
