"""Smart charging, pure: charging profiles, their validity, stacking and the composite schedule.

Version independent (OCPP 1.6 section 3.13, 2.0.1 use cases K01-K10): a profile is the neutral
``ChargingProfile`` — parsed here from a 1.6 ``csChargingProfiles`` object (``from_ocpp``), by
station/ocpp201/charging_profiles.py from a 2.0.1 ChargingProfileType — checked (``problems`` for
1.6, ``schedule_problems`` for what both versions share), installed in a ``ProfileSet`` and
evaluated at any time. Its ``connector_id`` is what the profile is set on: the 1.6 connectorId or
the 2.0.1 evseId, 0 for the whole station. No asyncio, no I/O: time is passed in.

Rules, per connector at time t:

- a profile applies while it is valid (validFrom <= t < validTo) and its schedule runs: Absolute
  from startSchedule, Recurring from startSchedule repeated every day or week (across midnight and
  week boundaries), Relative from the transaction start (from the requested start when there is
  no transaction); a schedule ends after its duration (a recurring one at the latest when it
  starts again);
- within a purpose the active profile with the highest stackLevel wins (when it ends, the next
  one down applies); a TxDefaultProfile of the connector itself overrules one of connector 0
  (which applies to every connector);
- TxProfile (only with a running transaction, and only its own when it names one) overrules
  TxDefaultProfile; the ChargePointMaxProfile (2.0.1 ChargingStationMaxProfile, connector 0) is
  the whole station's limit, shared equally by the connectors that charge; external constraints
  (2.0.1 ChargingStationExternalConstraints, set locally) limit the station (shared the same way)
  or one EVSE; the connector's limit is the minimum of them all;
- limits in W become amperes with the EVSE's voltage (230 V) and phases (numberPhases, default 3,
  at most the EVSE's); a limit below the schedule's minChargingRate offers nothing (the EV cannot
  charge that slowly efficiently).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from station.core.clock import iso, parse_iso

MAX_PROFILE = "ChargePointMaxProfile"  # the station's limit (2.0.1 ChargingStationMaxProfile)
TX_DEFAULT = "TxDefaultProfile"
TX_PROFILE = "TxProfile"
EXTERNAL = "ExternalConstraints"  # a local limit (2.0.1 ChargingStationExternalConstraints); none in 1.6
PURPOSES = (MAX_PROFILE, TX_DEFAULT, TX_PROFILE)  # what a 1.6 SetChargingProfile may carry
VOLTAGE_V = 230.0
DEFAULT_PHASES = 3  # numberPhases absent: three (1.6 ChargingSchedulePeriod)
CYCLE_S = {"Daily": 86_400.0, "Weekly": 604_800.0}
UNITS = {"A": "Current", "W": "Power"}  # chargingRateUnit -> its ChargingScheduleAllowedChargingRateUnit word


class ProfileError(ValueError):
    """A charging profile that cannot be used as given."""


@dataclass(frozen=True)
class SchedulePeriod:
    start_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class ChargingProfile:
    id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str  # Absolute | Recurring | Relative
    unit: str  # A | W
    periods: tuple[SchedulePeriod, ...]
    installed_at: datetime
    recurrency: str | None = None  # Daily | Weekly
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | str | None = None  # 1.6: an integer; 2.0.1: a string
    duration_s: int | None = None
    start_schedule: datetime | None = None
    min_rate: float | None = None
    raw: dict = field(default_factory=dict, compare=False, hash=False)  # as the CSMS sent it (reports)
    source: str = "CSO"  # who set it: CSO (the CSMS), EMS, SO, Other (2.0.1 ChargingLimitSource)

    @classmethod
    def from_ocpp(cls, connector_id: int, cp: dict, installed_at: datetime) -> ChargingProfile:
        """From a 1.6 csChargingProfiles object (already schema-checked). Raises ProfileError."""
        try:
            sched = cp["chargingSchedule"]
            periods = tuple(
                SchedulePeriod(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
                for p in sched["chargingSchedulePeriod"]
            )

            def when(v: str | None) -> datetime | None:
                return None if v is None else parse_iso(v)

            return cls(
                id=int(cp["chargingProfileId"]),
                connector_id=int(connector_id),
                stack_level=int(cp["stackLevel"]),
                purpose=cp["chargingProfilePurpose"],
                kind=cp["chargingProfileKind"],
                unit=sched["chargingRateUnit"],
                periods=periods,
                installed_at=installed_at,
                recurrency=cp.get("recurrencyKind"),
                valid_from=when(cp.get("validFrom")),
                valid_to=when(cp.get("validTo")),
                transaction_id=cp.get("transactionId"),
                duration_s=sched.get("duration"),
                start_schedule=when(sched.get("startSchedule")),
                min_rate=sched.get("minChargingRate"),
                raw=dict(cp),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"unusable charging profile: {e}") from None

    def record(self) -> dict:
        """What is stored to install the same profile again after a restart: its neutral fields
        (whichever OCPP version it came from) and the original object."""
        def when(v: datetime | None) -> str | None:
            return None if v is None else iso(v)

        return {"connectorId": self.connector_id, "installedAt": iso(self.installed_at), "profile": self.raw,
                "neutral": {"id": self.id, "stackLevel": self.stack_level, "purpose": self.purpose,
                            "kind": self.kind, "unit": self.unit, "recurrency": self.recurrency,
                            "periods": [[x.start_s, x.limit, x.number_phases] for x in self.periods],
                            "validFrom": when(self.valid_from), "validTo": when(self.valid_to),
                            "transactionId": self.transaction_id, "duration": self.duration_s,
                            "startSchedule": when(self.start_schedule), "minRate": self.min_rate,
                            "source": self.source}}

    @classmethod
    def from_record(cls, rec: dict) -> ChargingProfile:
        n = rec.get("neutral")
        if n is None:  # stored before records were neutral: a 1.6 profile
            return cls.from_ocpp(rec["connectorId"], rec["profile"], parse_iso(rec["installedAt"]))

        def when(v: str | None) -> datetime | None:
            return None if v is None else parse_iso(v)

        try:
            return cls(id=int(n["id"]), connector_id=int(rec["connectorId"]), stack_level=int(n["stackLevel"]),
                       purpose=n["purpose"], kind=n["kind"], unit=n["unit"],
                       periods=tuple(SchedulePeriod(int(a), float(b), c) for a, b, c in n["periods"]),
                       installed_at=parse_iso(rec["installedAt"]), recurrency=n.get("recurrency"),
                       valid_from=when(n.get("validFrom")), valid_to=when(n.get("validTo")),
                       transaction_id=n.get("transactionId"), duration_s=n.get("duration"),
                       start_schedule=when(n.get("startSchedule")), min_rate=n.get("minRate"),
                       raw=dict(rec.get("profile") or {}), source=n.get("source") or "CSO")
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"unusable stored charging profile: {e}") from None


@dataclass(frozen=True)
class Capabilities:
    """What the station accepts (1.6: ChargeProfileMaxStackLevel, ChargingScheduleAllowedChargingRateUnit,
    ChargingScheduleMaxPeriods, MaxChargingProfilesInstalled)."""

    max_stack_level: int = 10
    allowed_units: frozenset[str] = frozenset({"A", "W"})
    max_periods: int = 48
    max_installed: int = 20


def problems(p: ChargingProfile, *, connector_ids: Iterable[int], caps: Capabilities,
             running: Mapping[int, int | str | None], installed: ProfileSet | None = None,
             remote_start: bool = False) -> str | None:
    """Why SetChargingProfile (or RemoteStartTransaction's chargingProfile, ``remote_start``) must
    be Rejected; None when it can be installed. ``running``: connector -> its transaction's id
    (None while the CSMS has not numbered it) for the connectors with a running transaction."""
    cids = set(connector_ids)
    if p.connector_id != 0 and p.connector_id not in cids:
        return f"connector {p.connector_id} does not exist"
    if p.purpose not in PURPOSES:
        return f"unknown purpose {p.purpose}"
    if p.purpose == MAX_PROFILE and p.connector_id != 0:
        return "a ChargePointMaxProfile is set on connector 0 only"
    if p.purpose == TX_PROFILE and not remote_start:
        if p.connector_id == 0:
            return "a TxProfile is set on a connector, not on 0"
        if p.connector_id not in running:
            return f"no transaction on connector {p.connector_id} for a TxProfile"
        tx_id = running[p.connector_id]
        if p.transaction_id is not None and p.transaction_id != tx_id:
            return f"transactionId {p.transaction_id} is not the transaction on connector {p.connector_id}"
    if remote_start and p.transaction_id is not None:
        return "a chargingProfile of RemoteStartTransaction has no transactionId"
    why = schedule_problems(p, caps)
    if why is not None:
        return why
    if installed is not None and installed.count_after(p) > caps.max_installed:
        return f"MaxChargingProfilesInstalled ({caps.max_installed}) reached"
    return None


def schedule_problems(p: ChargingProfile, caps: Capabilities) -> str | None:
    """What both versions reject in any profile: stack level, unit, periods, kind, validity."""
    if p.stack_level < 0 or p.stack_level > caps.max_stack_level:
        return f"stackLevel {p.stack_level} is above ChargeProfileMaxStackLevel {caps.max_stack_level}"
    if p.unit not in caps.allowed_units:
        return f"chargingRateUnit {p.unit} is not allowed"
    if not p.periods:
        return "no chargingSchedulePeriod"
    if len(p.periods) > caps.max_periods:
        return f"{len(p.periods)} periods, ChargingScheduleMaxPeriods is {caps.max_periods}"
    if p.periods[0].start_s != 0:
        return "the first period must start at 0"
    if any(b.start_s <= a.start_s for a, b in zip(p.periods, p.periods[1:], strict=False)):
        return "periods must start in increasing order"
    if any(x.limit < 0 or (x.number_phases is not None and x.number_phases not in (1, 2, 3)) for x in p.periods):
        return "a period has a negative limit or numberPhases other than 1-3"
    if p.kind == "Recurring" and p.recurrency not in CYCLE_S:
        return "a Recurring profile needs recurrencyKind Daily or Weekly"
    if p.kind not in ("Absolute", "Recurring", "Relative"):
        return f"unknown chargingProfileKind {p.kind}"
    if p.duration_s is not None and p.duration_s < 0:
        return "negative duration"
    if p.valid_from is not None and p.valid_to is not None and p.valid_to <= p.valid_from:
        return "validTo is not after validFrom"
    return None


@dataclass(frozen=True)
class ConnectorContext:
    """What the evaluation needs to know of one connector."""

    connector_id: int
    phases: int = 3
    max_a: float = 32.0
    tx_start: datetime | None = None  # its running transaction's start; None: no transaction
    tx_id: int | str | None = None  # that transaction's id, when known (a TxProfile naming another does not apply)


@dataclass(frozen=True)
class Limit:
    amps: float | None  # None: no profile limits this connector
    phases: int
    min_rate_a: float | None = None


@dataclass(frozen=True)
class CompositePeriod:
    start_s: int
    amps: float
    phases: int


@dataclass(frozen=True)
class Composite:
    connector_id: int
    start: datetime
    duration_s: int
    periods: tuple[CompositePeriod, ...]
    min_rate_a: float | None = None

    def to_ocpp(self, unit: str) -> dict:
        """The 1.6 chargingSchedule of GetCompositeSchedule.conf in ``unit`` (A or W)."""
        out = []
        for p in self.periods:
            value = p.amps if unit == "A" else p.amps * VOLTAGE_V * p.phases
            period: dict = {"startPeriod": p.start_s, "limit": tenths(value)}
            if self.connector_id != 0:
                period["numberPhases"] = p.phases
            out.append(period)
        sched: dict = {"duration": self.duration_s, "startSchedule": iso(self.start), "chargingRateUnit": unit,
                       "chargingSchedulePeriod": out}
        if self.min_rate_a is not None:
            phases = self.periods[0].phases if self.periods else DEFAULT_PHASES
            sched["minChargingRate"] = round(self.min_rate_a if unit == "A" else self.min_rate_a * VOLTAGE_V * phases, 1)
        return sched


def tenths(value: float) -> float:
    """Down to a multiple of 0.1 (1.6 limits have one decimal; never above the limit): 10.87 -> 10.8,
    and 15.9999999 (a conversion's rounding error) -> 16.0."""
    return math.floor(value * 10 + 1e-6) / 10


def _ts(dt: datetime) -> float:
    return dt.timestamp()


class _Compiled:
    """One profile prepared for fast evaluation: times in epoch seconds, limits in amperes of one connector."""

    __slots__ = ("p", "starts", "amps", "phases", "vf", "vt", "dur", "cycle", "min_a")

    def __init__(self, p: ChargingProfile, ctx_phases: int) -> None:
        self.p = p
        self.starts = [float(x.start_s) for x in p.periods]
        self.phases = [min(x.number_phases or DEFAULT_PHASES, ctx_phases) for x in p.periods]
        if p.unit == "W":
            self.amps = [x.limit / (VOLTAGE_V * n) for x, n in zip(p.periods, self.phases, strict=True)]
            self.min_a = None if p.min_rate is None else p.min_rate / (VOLTAGE_V * self.phases[0])
        else:
            self.amps = [x.limit for x in p.periods]
            self.min_a = p.min_rate
        self.vf = _ts(p.valid_from) if p.valid_from else float("-inf")
        self.vt = _ts(p.valid_to) if p.valid_to else float("inf")
        self.cycle = CYCLE_S.get(p.recurrency or "") if p.kind == "Recurring" else None
        dur = float(p.duration_s) if p.duration_s is not None else float("inf")
        self.dur = min(dur, self.cycle) if self.cycle else dur

    def base(self, tx_start: float | None, fallback: float) -> float:
        p = self.p
        if p.kind == "Relative":
            return tx_start if tx_start is not None else fallback
        if p.start_schedule is not None:
            return _ts(p.start_schedule)
        return tx_start if tx_start is not None else _ts(p.installed_at)

    def at(self, t: float, base: float) -> int | None:
        """The index of the period in force at t, None when the profile does not apply."""
        if t < self.vf or t >= self.vt or t < base:
            return None
        off = t - base
        if self.cycle:
            off %= self.cycle
        if off >= self.dur:
            return None
        return bisect.bisect_right(self.starts, off) - 1

    def changes(self, lo: float, hi: float, base: float, out: set[float]) -> None:
        """Every time in (lo, hi) at which this profile's value may change."""
        for v in (self.vf, self.vt, base):
            if lo < v < hi:
                out.add(v)
        edges = self.starts + ([self.dur] if self.dur != float("inf") else [])
        if self.cycle:
            # instances before validFrom change nothing: start from the one running at max(lo, validFrom)
            k = max(0, int((max(lo, self.vf) - base) // self.cycle))
            while True:
                inst = base + k * self.cycle
                if inst >= hi:
                    break
                for e in edges:
                    v = inst + e
                    if lo < v < hi and self.vf <= v <= self.vt:
                        out.add(v)
                k += 1
        else:
            for e in edges:
                v = base + e
                if lo < v < hi and self.vf <= v <= self.vt:
                    out.add(v)


def overlap(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Whether the validity periods of two profiles overlap (an absent bound is open)."""
    a_from = a.valid_from or datetime.min.replace(tzinfo=UTC)
    b_from = b.valid_from or datetime.min.replace(tzinfo=UTC)
    a_to = a.valid_to or datetime.max.replace(tzinfo=UTC)
    b_to = b.valid_to or datetime.max.replace(tzinfo=UTC)
    return a_from < b_to and b_from < a_to


class ProfileSet:
    """The installed charging profiles of one station, by id.

    A profile replaces the one with its id and the one with its purpose, stack level and target
    (1.6 section 3.13.2); with ``overlapping_only`` (2.0.1 K01.FR.06) the latter only when their
    validity periods overlap: a TxDefaultProfile for the week and one for the weekend may share a
    stack level."""

    def __init__(self, profiles: Iterable[ChargingProfile] = (), *, overlapping_only: bool = False) -> None:
        self.profiles: dict[int, ChargingProfile] = {}
        self.overlapping_only = overlapping_only
        for p in profiles:
            self.install(p)

    def __len__(self) -> int:
        return len(self.profiles)

    def _replaced_by(self, p: ChargingProfile) -> list[int]:
        return [q.id for q in self.profiles.values()
                if q.id == p.id or (q.purpose == p.purpose and q.stack_level == p.stack_level
                                    and q.connector_id == p.connector_id
                                    and (not self.overlapping_only or overlap(p, q)))]

    def count_after(self, p: ChargingProfile) -> int:
        return len(self.profiles) - len(self._replaced_by(p)) + 1

    def install(self, p: ChargingProfile) -> list[ChargingProfile]:
        """Install ``p``; the same id, or the same purpose, stackLevel and connector, is replaced.
        Returns the replaced profiles."""
        gone = [self.profiles.pop(i) for i in self._replaced_by(p)]
        self.profiles[p.id] = p
        return gone

    def clear(self, profile_id: int | None = None, connector_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> list[ChargingProfile]:
        """ClearChargingProfile: by id, else every profile matching the criteria given (none: all)."""
        if profile_id is not None:
            hit = [p for p in self.profiles.values() if p.id == profile_id]
        else:
            hit = [p for p in self.profiles.values()
                   if (connector_id is None or p.connector_id == connector_id)
                   and (purpose is None or p.purpose == purpose)
                   and (stack_level is None or p.stack_level == stack_level)]
        for p in hit:
            del self.profiles[p.id]
        return hit

    # -- evaluation ------------------------------------------------------------------------
    def _relevant(self, ctx: ConnectorContext) -> dict[str, list[_Compiled]]:
        """The connector's candidates per purpose, in precedence order (first wins)."""
        def key(p: ChargingProfile) -> tuple[int, int]:
            return (-p.stack_level, 0 if p.connector_id == ctx.connector_id else 1)

        out: dict[str, list[_Compiled]] = {MAX_PROFILE: [], TX_DEFAULT: [], TX_PROFILE: [], EXTERNAL: []}
        for p in sorted(self.profiles.values(), key=key):
            if p.purpose == MAX_PROFILE:
                out[MAX_PROFILE].append(_Compiled(p, ctx.phases))
            elif p.connector_id in (0, ctx.connector_id) and p.purpose in out:
                if p.purpose == TX_PROFILE and (ctx.tx_start is None or p.connector_id != ctx.connector_id
                                                or (p.transaction_id is not None and ctx.tx_id is not None
                                                    and p.transaction_id != ctx.tx_id)):
                    continue
                out[p.purpose].append(_Compiled(p, ctx.phases))
        # a TxDefaultProfile of the connector itself overrules connector 0's whatever their stack levels
        out[TX_DEFAULT].sort(key=lambda c: 0 if c.p.connector_id == ctx.connector_id else 1)
        return out

    @staticmethod
    def _first(cands: list[tuple[_Compiled, float]], t: float) -> tuple[float, int, float | None] | None:
        """The value of the first candidate that applies at t."""
        for c, base in cands:
            i = c.at(t, base)
            if i is not None:
                return c.amps[i], c.phases[i], c.min_a
        return None

    def _evaluator(self, ctx: ConnectorContext, fallback: float,
                   sharers: int) -> tuple[Callable[[float], tuple[float | None, int, float | None]], list]:
        """A function of time -> (amperes or None, phases, minChargingRate in A) for the connector,
        and the candidate profiles (with their schedule starts) whose edges matter."""
        rel = self._relevant(ctx)
        tx = None if ctx.tx_start is None else _ts(ctx.tx_start)
        txp = [(c, c.base(tx, fallback)) for c in rel[TX_PROFILE]]
        txd = [(c, c.base(tx, fallback)) for c in rel[TX_DEFAULT]]
        maxes = [(c, c.base(tx, fallback)) for c in rel[MAX_PROFILE]]
        externals = [(c, c.base(tx, fallback)) for c in rel[EXTERNAL]]
        share = max(1, sharers)
        own = txp + txd  # a TxProfile first; when none runs, the default
        default_phases = ctx.phases

        def evaluate(t: float) -> tuple[float | None, int, float | None]:
            amps: float | None = None
            phases = default_phases
            min_a = None
            for c, base in own:
                i = c.at(t, base)
                if i is not None:
                    amps, phases, min_a = c.amps[i], c.phases[i], c.min_a
                    break
            for layer in (maxes, externals):  # each: the first that applies; a station-wide one is shared
                for c, base in layer:
                    i = c.at(t, base)
                    if i is not None:
                        cap = c.amps[i] / share if c.p.connector_id == 0 else c.amps[i]
                        if amps is None or cap < amps:
                            amps = cap
                        break
            if amps is not None and min_a is not None and amps < min_a:
                amps = 0.0
            return amps, phases, min_a

        return evaluate, own + maxes + externals

    def limit_at(self, ctx: ConnectorContext, t: datetime, sharers: int = 1) -> Limit:
        """The connector's limit at ``t``; ``sharers``: connectors sharing the ChargePointMaxProfile."""
        evaluate, _ = self._evaluator(ctx, _ts(t), sharers)
        return Limit(*evaluate(_ts(t)))

    def next_change(self, ctx: ConnectorContext, after: datetime, sharers: int = 1) -> datetime | None:
        """The first time after ``after`` at which the connector's limit may change (a period
        boundary, a validity edge, a schedule end), however far ahead; None: it never changes."""
        lo = _ts(after)
        _, cands = self._evaluator(ctx, lo, sharers)
        edges: set[float] = set()
        for c, base in cands:
            if c.p.kind == "Relative" and ctx.tx_start is None:
                continue  # starts with a transaction: nothing to wait for until then
            # a recurring schedule: its edges repeat, two cycles from its first instance after lo hold the next one
            hi = max(lo, base, c.vf) + 2 * c.cycle if c.cycle else float("inf")
            c.changes(lo, hi, base, edges)
        return datetime.fromtimestamp(min(edges), UTC) if edges else None

    def composite(self, ctx: ConnectorContext, start: datetime, duration_s: int, sharers: int = 1) -> Composite:
        """GetCompositeSchedule of one connector: its limits from ``start`` for ``duration_s``
        (the EVSE's own maximum where no profile limits it)."""
        lo = _ts(start)
        hi = lo + duration_s
        evaluate, cands = self._evaluator(ctx, lo, sharers)
        edges: set[float] = {lo}
        for c, base in cands:
            c.changes(lo, hi, base, edges)
        periods: list[CompositePeriod] = []
        min_rate = None
        top = ctx.max_a
        last: tuple[float, int] | None = None
        for t in sorted(edges):
            amps, phases, min_a = evaluate(t)
            amps = round(top if amps is None or amps > top else amps, 3)
            if min_rate is None:
                min_rate = min_a
            if last == (amps, phases):
                continue
            last = (amps, phases)
            period = CompositePeriod(int(round(t - lo)), amps, phases)
            if periods and periods[-1].start_s == period.start_s:
                periods[-1] = period
                continue
            periods.append(period)
        return Composite(ctx.connector_id, start, duration_s, tuple(periods), min_rate)

    def composite_station(self, contexts: Iterable[ConnectorContext], start: datetime, duration_s: int) -> Composite:
        """GetCompositeSchedule of connector 0: what the whole station may draw, the sum of its
        connectors' schedules within the ChargePointMaxProfile."""
        ctxs = list(contexts)
        phases = max((c.phases for c in ctxs), default=DEFAULT_PHASES)
        lo = _ts(start)
        hi = lo + duration_s
        per = [(c, self._evaluator(c, lo, 1)) for c in ctxs]
        station = ConnectorContext(0, phases, sum(c.max_a for c in ctxs))
        rel = self._relevant(station)
        maxes = [(c, c.base(None, lo)) for c in rel[MAX_PROFILE]]
        externals = [(c, c.base(None, lo)) for c in rel[EXTERNAL] if c.p.connector_id == 0]
        edges: set[float] = {lo}
        for _, (_, cands) in per:
            for c, base in cands:
                c.changes(lo, hi, base, edges)
        periods: list[CompositePeriod] = []
        for t in sorted(edges):
            total = 0.0
            for ctx, (evaluate, _) in per:
                own = evaluate(t)[0]
                total += ctx.max_a if own is None else min(own, ctx.max_a)
            for layer in (maxes, externals):
                top = self._first(layer, t) if layer else None
                if top is not None:
                    total = min(total, top[0])
            period = CompositePeriod(int(round(t - lo)), round(total, 3), phases)
            if periods and periods[-1].amps == period.amps:
                continue
            if periods and periods[-1].start_s == period.start_s:
                periods[-1] = period
                continue
            periods.append(period)
        return Composite(0, start, duration_s, tuple(periods))
