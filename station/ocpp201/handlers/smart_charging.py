"""OCPP 2.0.1 block K (smart charging): K01 SetChargingProfile, K08 GetCompositeSchedule, K09
GetChargingProfiles -> ReportChargingProfiles, K10 ClearChargingProfile; the chargingProfile of
RequestStartTransaction (K05 / F01) installed as the transaction starts.

The rules are the shared engine's (station/core/charging.py: stacking, composite schedules); the
keeping, the persistence and the limit reaching the pilot at each period boundary are the shared
service's (station/charging.py). ``Charging201`` is that service as 2.0.1 sees the station: a
profile is set on an EVSE (0: the station), a transaction is the 2.0.1 transaction (its id a
string; a TxProfile lives as long as it does), and a change of the limit during a transaction
beyond SmartChargingCtrlr.LimitChangeSignificance is told with a TransactionEvent Updated,
triggerReason ChargingRateChanged. 2.0.1 translations: station/ocpp201/charging_profiles.py.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import groupby
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import NotSupportedError

from station.charging import ChargingService, TxFacts
from station.core.charging import (
    EXTERNAL,
    TX_PROFILE,
    Capabilities,
    ChargingProfile,
    ConnectorContext,
    ProfileError,
    SchedulePeriod,
)
from station.core.clock import iso, parse_iso
from station.core.transaction import Transaction
from station.ocpp201 import charging_profiles as cps
from station.ocpp201.device_model import CHARGING_PROFILES_MAX
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter
    from station.ocpp201.transaction_event import Tx201

routes = Routes("SmartCharging")

C = "SmartChargingCtrlr"
EXTERNAL_ID_BASE = 2_000_000_000  # ids of the station's external limits: above any a CSMS is likely to use


def capabilities(ad: Ocpp201Adapter) -> Capabilities:
    """What SmartChargingCtrlr allows."""
    units = frozenset(u for u in ad.members(C, "RateUnit") if u in ("A", "W"))
    return Capabilities(max_stack_level=ad.integer(C, "ProfileStackLevel"), allowed_units=units,
                        max_periods=ad.integer(C, "PeriodsPerSchedule"), max_installed=CHARGING_PROFILES_MAX)


def enabled(ad: Ocpp201Adapter) -> bool:
    return ad.flag(C, "Enabled")


class Charging201(ChargingService):
    """The shared smart charging service, seen through 2.0.1 (see the module docstring)."""

    OVERLAPPING_ONLY = True  # K01.FR.06: same stackLevel and purpose may coexist when their validity does not overlap

    def __init__(self, ad: Ocpp201Adapter) -> None:
        super().__init__(ad.station, ad.store, ad.scheduler, ad.log, capabilities=lambda: capabilities(ad))
        self.ad = ad
        self._rate: dict[int, float | None] = {}  # connector -> the limit last told for its transaction

    # -- the station as 2.0.1 sees it ----------------------------------------------------------
    def target(self, cid: int) -> int:
        return self.ad.address(cid)[0]

    def tx_facts(self, cid: int) -> TxFacts | None:
        t = self.ad.transactions.open.get(cid)
        if t is not None and t.stopped_reason is None:
            return TxFacts(t.transaction_id, parse_iso(t.started_at) if t.started_at else self.scheduler.now())
        tx = self._tx(cid)  # a session before its transaction's start point (EnergyTransfer): limited already
        return None if tx is None else TxFacts(None, tx.started_at)

    def remote_profile(self, tx: Transaction) -> ChargingProfile:
        """The TxProfile of RequestStartTransaction, checked as K01 checks a SetChargingProfile
        (but for the transactionId it cannot have); raises ProfileError when it is not usable."""
        t = self.ad.transactions.open.get(tx.connector_id)
        assert tx.charging_profile is not None
        evse_id = self.target(tx.connector_id)
        p = cps.from_wire(evse_id, tx.charging_profile, self.scheduler.now())
        why = cps.check(p, tx.charging_profile, evse_ids=self.ad.layout, caps=self.capabilities(),
                        running=self.running(), installed=self.profiles, remote_start=True)
        if why is not None:
            raise ProfileError(f"{why[0]}: {why[1]}")
        if t is None:
            return p
        return replace(p, transaction_id=t.transaction_id, raw={**p.raw, "transactionId": t.transaction_id})

    def station_contexts(self) -> list[ConnectorContext]:
        return [self.context(self.serving(e)) for e in self.station.evses.values()]

    def evse_connector(self, evse_id: int) -> int | None:
        """The connector an EVSE's limit is applied to (None: no such EVSE)."""
        cids = self.ad.connectors_of(evse_id)
        return self.serving(self.station.evse_of(cids[0])) if cids else None

    # -- transactions (the adapter tells every service, adapter._tell_services) ----------------------
    def transaction_started(self, tx: Transaction) -> None:
        """The core session started: a remote start's TxProfile is installed (when smart charging
        is enabled; else it is ignored, F01.FR.12), its limit is the transaction's first rate."""
        self._rate.pop(tx.connector_id, None)
        if tx.charging_profile and not enabled(self.ad):
            self.log.info("chargingProfile of the remote start ignored: SmartChargingCtrlr.Enabled is false")
            try:
                self.reevaluate()
            except Exception:
                self.log.exception("charging limit at the start of the session on connector %d", tx.connector_id)
        else:
            super().transaction_started(tx)
        self._rate[tx.connector_id] = self._offered(tx.connector_id)

    def transaction_stopped(self, tx: Transaction) -> None:
        """The session ended. TxProfiles end with the 2.0.1 transaction (``tx_closed``), which may
        outlive the session (TxStopPoint EVConnected); when none is open (it ended with the
        session, or never started: TxStartPoint EnergyTransfer without energy) they end now."""
        try:
            if tx.connector_id in self.ad.transactions.open:
                self.reevaluate()
            else:
                self.end_tx_profiles(self.target(tx.connector_id))
        except Exception:
            self.log.exception("charging limit at the end of the session on connector %d", tx.connector_id)

    def tx_opened(self, t: Tx201) -> None:
        """The 2.0.1 transaction started: a remote start's TxProfile, installed when the session
        started (before PowerPathClosed, say), now names it."""
        for p in [p for p in self.profiles.profiles.values()
                  if p.purpose == TX_PROFILE and p.connector_id == t.evse_id and p.transaction_id is None]:
            self.install(replace(p, transaction_id=t.transaction_id, raw={**p.raw, "transactionId": t.transaction_id}))
        if t.cid not in self._rate:
            self._rate[t.cid] = self._offered(t.cid)
        self.reevaluate()

    def tx_closed(self, t: Tx201) -> None:
        self._rate.pop(t.cid, None)
        self.end_tx_profiles(t.evse_id, t.transaction_id)

    def _offered(self, cid: int) -> float | None:
        applied = self._applied.get(self.station.evse_of(cid).evse_id)
        return applied[1] if applied is not None and applied[0] == cid else None

    def limit_changed(self, cid: int, amps: float | None) -> None:
        """E/K: TransactionEvent Updated (ChargingRateChanged) when the rate of a running
        transaction changed by at least LimitChangeSignificance percent."""
        if cid not in self._rate or cid not in self.ad.transactions.open:
            return
        top = self.station.evse_of(cid).max_current_a
        old, new = self._rate[cid], amps
        old_a = top if old is None else min(old, top)
        new_a = top if new is None else min(new, top)
        significance = float(self.ad.dm.value(C, "LimitChangeSignificance") or 0)
        if old_a == new_a or (old_a > 0 and abs(new_a - old_a) * 100.0 / old_a < significance):
            return
        self._rate[cid] = new
        self.ad.transactions.charging_rate_changed(cid)

    # -- external limits (K11-K13: an energy management system, a grid operator) ---------------
    def external_limit(self, evse_id: int, limit: float | None, unit: str = "A", source: str = "EMS") -> bool:
        """Set (or, with ``limit`` None, lift) the external limit of the station (``evse_id`` 0)
        or one EVSE: a ChargingStationExternalConstraints profile of the engine, applied like any
        other; the CSMS is told with NotifyChargingLimit (with the schedule when
        SmartChargingCtrlr.NotifyChargingLimitWithSchedules) or ClearedChargingLimit. False:
        there was nothing to lift."""
        pid = EXTERNAL_ID_BASE + evse_id
        gone = self.profiles.clear(profile_id=pid)
        self._forget(gone)
        where: dict[str, Any] = {"evseId": evse_id} if evse_id else {}
        if limit is None:
            self.reevaluate()
            if gone:
                self.log.info("external limit of %s lifted (%s)", f"EVSE {evse_id}" if evse_id else "the station", source)
                self.ad.spawn(self.ad.send_quietly("ClearedChargingLimit", {"chargingLimitSource": source, **where}))
            return bool(gone)
        now = self.scheduler.now()
        schedule = {"id": 1, "startSchedule": iso(now), "chargingRateUnit": unit,
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": float(limit)}]}
        raw = {"id": pid, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationExternalConstraints",
               "chargingProfileKind": "Absolute", "chargingSchedule": [schedule]}
        self.install(ChargingProfile(id=pid, connector_id=evse_id, stack_level=0, purpose=EXTERNAL, kind="Absolute",
                                     unit=unit, periods=(SchedulePeriod(0, float(limit)),), installed_at=now,
                                     start_schedule=now, raw=raw, source=source))
        payload: dict[str, Any] = {"chargingLimit": {"chargingLimitSource": source}, **where}
        if self.ad.flag(C, "NotifyChargingLimitWithSchedules"):
            payload["chargingSchedule"] = [schedule]
        self.log.info("external limit of %s: %g %s (%s)", f"EVSE {evse_id}" if evse_id else "the station", limit,
                      unit, source)
        self.ad.spawn(self.ad.send_quietly("NotifyChargingLimit", payload))
        return True

    # -- CSMS requests --------------------------------------------------------------------------
    def clear_ids(self, ids: list[int]) -> list[ChargingProfile]:
        gone: list[ChargingProfile] = []
        for pid in ids:
            gone += self.profiles.clear(profile_id=pid)
        self._forget(gone)
        if gone:
            self.log.info("charging profile(s) %s cleared", [p.id for p in gone])
            self.reevaluate()
        return gone


def charging(ad: Ocpp201Adapter) -> Charging201:
    svc = ad.services["smart_charging"]
    assert isinstance(svc, Charging201)
    return svc


def _rejected(code: str, info: str) -> dict:
    return {"status": "Rejected", "statusInfo": {"reasonCode": code, "additionalInfo": info[:512]}}


def profile_problem(ad: Ocpp201Adapter, evse_id: int, cp: dict,
                    remote_start: bool = False) -> tuple[ChargingProfile | None, tuple[str, str] | None]:
    """The neutral profile of ``cp`` set on ``evse_id`` and why it must be Rejected (None: usable)."""
    svc = charging(ad)
    try:
        p = cps.from_wire(evse_id, cp, ad.scheduler.now())
    except ProfileError as e:
        return None, ("InvalidProfile", str(e))
    return p, cps.check(p, cp, evse_ids=ad.layout, caps=capabilities(ad), running=svc.running(),
                        installed=svc.profiles, remote_start=remote_start)


@routes.on("SetChargingProfile")
async def set_charging_profile(ad: Ocpp201Adapter, p: dict) -> dict:
    if not enabled(ad):  # K01.FR.29 (TC_K_15)
        raise NotSupportedError(description="smart charging is not enabled on this station (SmartChargingCtrlr.Enabled)")
    profile, why = profile_problem(ad, p["evseId"], p["chargingProfile"])
    if why is not None or profile is None:
        code, info = why or ("InvalidProfile", "unusable")
        ad.log.info("SetChargingProfile Rejected: %s (%s)", code, info)
        return _rejected(code, info)
    charging(ad).install(profile)
    return {"status": "Accepted"}


def _matches(q: ChargingProfile, evse_id: int | None, crit: dict) -> bool:
    if evse_id is not None and q.connector_id != evse_id:
        return False
    if "chargingProfileId" in crit and q.id not in crit["chargingProfileId"]:
        return False
    if "chargingProfilePurpose" in crit and cps.WIRE_PURPOSE.get(q.purpose) != crit["chargingProfilePurpose"]:
        return False
    if "stackLevel" in crit and q.stack_level != crit["stackLevel"]:
        return False
    return "chargingLimitSource" not in crit or q.source in crit["chargingLimitSource"]


@routes.on("GetChargingProfiles")
async def get_charging_profiles(ad: Ocpp201Adapter, p: dict) -> Any:
    """K09: Accepted and the matching profiles in ReportChargingProfiles, one message per EVSE and
    source (tbc on all but the last), or NoProfiles."""
    crit = p["chargingProfile"]
    evse_id = p.get("evseId")
    hits = sorted((q for q in charging(ad).profiles.profiles.values() if _matches(q, evse_id, crit)),
                  key=lambda q: (q.connector_id, q.source, q.id))
    if not hits:
        return {"status": "NoProfiles"}
    reports = [(evse, source, [cps.to_wire(q) for q in group])
               for (evse, source), group in groupby(hits, key=lambda q: (q.connector_id, q.source))]

    async def report() -> None:
        for n, (evse, source, profiles) in enumerate(reports):
            await ad.send_quietly("ReportChargingProfiles", {
                "requestId": p["requestId"], "chargingLimitSource": source, "evseId": evse,
                "chargingProfile": profiles, "tbc": n < len(reports) - 1})

    return {"status": "Accepted"}, report


@routes.on("ClearChargingProfile")
async def clear_charging_profile(ad: Ocpp201Adapter, p: dict) -> dict:
    """K10: by chargingProfileId, else every profile the CSMS set matching the criteria (none: all);
    external constraints are not the CSMS's to clear (K10.FR.06)."""
    svc = charging(ad)
    crit = p.get("chargingProfileCriteria") or {}
    if crit.get("chargingProfilePurpose") == "ChargingStationExternalConstraints":
        return {"status": "Unknown", "statusInfo": {"reasonCode": "InvalidValue",
                                                    "additionalInfo": "external constraints are not cleared by the CSMS"}}
    pid = p.get("chargingProfileId")
    ours = [q for q in svc.profiles.profiles.values() if q.purpose != EXTERNAL]
    if pid is not None:
        ids = [q.id for q in ours if q.id == pid]
    else:
        ids = [q.id for q in ours
               if ("evseId" not in crit or q.connector_id == crit["evseId"])
               and ("chargingProfilePurpose" not in crit
                    or cps.WIRE_PURPOSE.get(q.purpose) == crit["chargingProfilePurpose"])
               and ("stackLevel" not in crit or q.stack_level == crit["stackLevel"])]
    gone = svc.clear_ids(ids)
    return {"status": "Accepted" if gone else "Unknown"}


@routes.on("GetCompositeSchedule")
async def get_composite_schedule(ad: Ocpp201Adapter, p: dict) -> dict:
    """K08: the limits from now for ``duration`` seconds, of one EVSE or (evseId 0) the station."""
    evse_id = p["evseId"]
    allowed = capabilities(ad).allowed_units
    unit = p.get("chargingRateUnit") or ("A" if "A" in allowed else next(iter(sorted(allowed)), "A"))
    if unit not in allowed:  # TC_K_42
        return _rejected("UnsupportedRateUnit", f"chargingRateUnit {unit} is not in SmartChargingCtrlr.RateUnit")
    svc = charging(ad)
    cid = 0 if evse_id == 0 else svc.evse_connector(evse_id)
    if cid is None:  # TC_K_47
        return _rejected("UnknownEvse", f"EVSE {evse_id} does not exist")
    composite = svc.composite(cid, int(p["duration"]))
    return {"status": "Accepted", "schedule": cps.composite_schedule(evse_id, composite, unit)}


def service(ad: Ocpp201Adapter) -> Charging201:
    """The station's charging profiles and limits (``adapter.services["smart_charging"]``)."""
    svc = Charging201(ad)
    ad.dm.provide(C, "EntriesChargingProfiles", lambda: len(svc.profiles))
    return svc
