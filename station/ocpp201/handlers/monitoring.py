"""OCPP 2.0.1 block N, monitoring (N02-N07): variable monitors and the events they raise.

A monitor watches one variable of the device model (``supportsMonitoring``): UpperThreshold /
LowerThreshold (numbers: an event when the value goes past the threshold, a ``cleared`` one when
it comes back), Delta (numbers: a change of at least ``value`` since the last event; any other
type: every change), Periodic (every ``value`` seconds) and PeriodicClockAligned (at every
multiple of ``value`` seconds after midnight UTC). Monitors are kept in the store (namespace
``monitor201``) and survive a restart. SetMonitoringLevel drops events less severe (a higher
number) than the level; SetMonitoringBase FactoryDefault / HardWiredOnly removes the custom
monitors (this station has no preconfigured ones).

Besides the monitors, the station reports its own problems: a connector's or EVSE's ``Problem``
going true (a fault) or false is a NotifyEvent of type HardWiredNotification naming the fault
code as techCode — 2.0.1 has no error code in StatusNotification.

Events are sent with NotifyEvent when online; while off line those at least as severe as
MonitoringCtrlr.OfflineQueuingSeverity are kept (at most 100) and sent after the reconnect.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from station.ocpp201.device_model import ComponentKey, Variable
from station.ocpp201.handlers import Routes
from station.scheduler import Timer

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Monitoring")
NS = "monitor201"
THRESHOLDS = ("UpperThreshold", "LowerThreshold")
PERIODIC = ("Periodic", "PeriodicClockAligned")
CRITERIA = {"ThresholdMonitoring": THRESHOLDS, "DeltaMonitoring": ("Delta",), "PeriodicMonitoring": PERIODIC}
OFFLINE_QUEUE = 100
HARDWIRED_SEVERITY = 3  # "Error" of Part 2's severity levels


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


class Monitoring:
    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        self.monitors: dict[int, dict] = {int(k): m for k, m in ad.store.items(NS).items() if k.isdigit()}
        self.state: dict[int, Any] = {}  # monitor id -> threshold crossed (bool) / Delta reference (str)
        self._timers: dict[int, Timer] = {}
        self._event_ids = itertools.count(int(ad.store.get(NS, "next_event_id", 1)))
        self._queued: list[dict] = []
        ad.dm.watch(self._changed)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        for mid in self.monitors:
            self._arm(mid)

    def stop(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    def registered(self) -> None:
        """Online again: the events kept while off line go out."""
        queued, self._queued = self._queued, []
        if queued:
            self.ad.spawn(self._send(queued))

    reconnected = registered

    # -- monitors ---------------------------------------------------------------------------
    def level(self) -> int:
        return self.ad.integer("MonitoringCtrlr", "ActiveMonitoringLevel")

    def put(self, mid: int, monitor: dict) -> None:
        self.monitors[mid] = monitor
        self.state.pop(mid, None)
        self.ad.store.put(NS, str(mid), monitor)
        self._arm(mid)

    def remove(self, mid: int) -> bool:
        if self.monitors.pop(mid, None) is None:
            return False
        self.ad.store.delete(NS, str(mid))
        self.state.pop(mid, None)
        t = self._timers.pop(mid, None)
        if t is not None:
            t.cancel()
        return True

    def _target(self, m: dict) -> tuple[ComponentKey, Variable] | None:
        found = self.ad.dm.resolve(m["component"], m["variable"])
        return None if isinstance(found, str) else found

    def _arm(self, mid: int) -> None:
        m = self.monitors.get(mid)
        old = self._timers.pop(mid, None)
        if old is not None:
            old.cancel()
        if m is None or m["type"] not in PERIODIC or m["value"] <= 0:
            return
        period = float(m["value"])
        if m["type"] == "Periodic":
            delay = period
        else:
            now = self.ad.scheduler.now()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed = (now - midnight).total_seconds()
            delay = period - (elapsed % period) or period
        self._timers[mid] = self.ad.scheduler.call_later(delay, lambda: self._periodic(mid))

    def _periodic(self, mid: int) -> None:
        self._timers.pop(mid, None)
        m = self.monitors.get(mid)
        found = self._target(m) if m else None
        if m is None or found is None:
            return
        ck, v = found
        self._event(m, ck, v, "Periodic", self.ad.dm.raw(ck, v) or "")
        self._arm(mid)

    def _changed(self, ck: ComponentKey, v: Variable, attribute: str, text: str) -> None:
        if attribute != "Actual":
            return
        if v.name == "Problem" and v.component in ("EVSE", "Connector", "ChargingStation"):
            self._hardwired(ck, v, text)
        for mid, m in list(self.monitors.items()):
            if m["type"] in PERIODIC:
                continue
            found = self._target(m)
            if found is None or found[0] != ck or found[1] is not v:
                continue
            self._evaluate(mid, m, ck, v, text)

    def _evaluate(self, mid: int, m: dict, ck: ComponentKey, v: Variable, text: str) -> None:
        value = _num(text)
        if m["type"] in THRESHOLDS:
            if value is None:
                return
            crossed = value > m["value"] if m["type"] == "UpperThreshold" else value < m["value"]
            was = bool(self.state.get(mid, False))
            if crossed != was:
                self.state[mid] = crossed
                self._event(m, ck, v, "Alerting", text, cleared=not crossed)
            return
        # Delta
        ref = self.state.get(mid)
        if v.numeric:
            if ref is None:
                self.state[mid] = text
                ref_num = None
            else:
                ref_num = _num(ref)
            if ref_num is not None and value is not None and abs(value - ref_num) >= m["value"]:
                self.state[mid] = text
                self._event(m, ck, v, "Delta", text)
        elif ref != text:
            self.state[mid] = text
            if ref is not None:
                self._event(m, ck, v, "Delta", text)

    def prime(self, mid: int) -> None:
        """A new Delta monitor takes the value of now as its reference."""
        m = self.monitors.get(mid)
        found = self._target(m) if m else None
        if m is not None and found is not None and m["type"] == "Delta":
            self.state[mid] = self.ad.dm.raw(*found) or ""

    # -- events -----------------------------------------------------------------------------
    def _hardwired(self, ck: ComponentKey, v: Variable, text: str) -> None:
        problem = text == "true"
        fault = None
        if problem and ck[2] is not None:
            cid = self.ad.connector_number(ck[2], ck[3] or 1)
            fault = self.ad.station.status_of(cid)[1] if cid is not None else None
        data = self._data(ck, v, "Delta", text, "HardWiredNotification", cleared=not problem)
        if fault:
            data["techCode"] = str(fault)[:50]
        self._emit(data, HARDWIRED_SEVERITY)

    def _data(self, ck: ComponentKey, v: Variable, trigger: str, actual: str, kind: str,
              cleared: bool = False) -> dict:
        event_id = next(self._event_ids)
        self.ad.store.put(NS, "next_event_id", event_id + 1)
        data: dict[str, Any] = {"eventId": event_id, "timestamp": self.ad.now_iso(), "trigger": trigger,
                                "actualValue": actual[:2500], "eventNotificationType": kind,
                                "component": self.ad.dm.component_dict(ck),
                                "variable": {"name": v.name, **({"instance": v.instance} if v.instance else {})}}
        if cleared:
            data["cleared"] = True
        return data

    def _event(self, m: dict, ck: ComponentKey, v: Variable, trigger: str, actual: str, cleared: bool = False) -> None:
        if m["severity"] > self.level():
            return
        data = self._data(ck, v, trigger, actual, "CustomMonitor", cleared)
        data["variableMonitoringId"] = m["id"]
        if m.get("transaction"):
            open_tx = next(iter(self.ad.transactions.open.values()), None)
            if open_tx is not None:
                data["transactionId"] = open_tx.transaction_id
        self._emit(data, m["severity"])

    def _emit(self, data: dict, severity: int) -> None:
        if self.ad.online:
            self.ad.spawn(self._send([data]))
        elif severity <= self.ad.integer("MonitoringCtrlr", "OfflineQueuingSeverity"):
            self._queued = (self._queued + [data])[-OFFLINE_QUEUE:]

    async def _send(self, events: list[dict]) -> None:
        per = self.ad.integer("DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport")
        await self.ad.send_parts("NotifyEvent", "eventData", events, per, {"generatedAt": self.ad.now_iso()})


def service(ad: Ocpp201Adapter) -> Monitoring:
    return Monitoring(ad)


def _mon(ad: Ocpp201Adapter) -> Monitoring:
    return ad.services["monitoring"]


def _limit(ad: Ocpp201Adapter, action: str, items: list) -> None:
    from ocpp.exceptions import OccurrenceConstraintViolationError  # noqa: PLC0415

    most = ad.integer("MonitoringCtrlr", "ItemsPerMessage", instance=action)
    if most and len(items) > most:
        raise OccurrenceConstraintViolationError(description=f"{len(items)} elements; at most {most} per {action}")


@routes.on("SetVariableMonitoring")
async def set_variable_monitoring(ad: Ocpp201Adapter, p: dict) -> dict:
    mon = _mon(ad)
    _limit(ad, "SetVariableMonitoring", p["setMonitoringData"])
    results = []
    for d in p["setMonitoringData"]:
        r: dict[str, Any] = {"type": d["type"], "severity": d["severity"], "component": d["component"],
                             "variable": d["variable"]}
        found = ad.dm.resolve(d["component"], d["variable"])
        status, why = "Accepted", ""
        if isinstance(found, str):
            status = found
        elif not ad.flag("MonitoringCtrlr", "Enabled"):
            status, why = "Rejected", "MonitoringCtrlr.Enabled is false"
        else:
            ck, v = found
            same = [m for m in mon.monitors.values() if mon._target(m) == found and m["type"] == d["type"]
                    and m["severity"] == d["severity"] and m["id"] != d.get("id")]
            if not v.monitorable:
                status, why = "Rejected", f"{v.label} does not support monitoring"
            elif d["type"] in THRESHOLDS and not v.numeric:
                status, why = "UnsupportedMonitorType", f"{v.label} is not a number"
            elif d["type"] in PERIODIC and d["value"] <= 0:
                status, why = "Rejected", "a periodic monitor needs a value above 0 (seconds)"
            elif (problem := _out_of_range(v, d["type"], float(d["value"]))) is not None:
                status, why = "Rejected", problem
            elif "id" in d and d["id"] not in mon.monitors:
                status, why = "Rejected", f"no monitor with id {d['id']} to replace"
            elif same:
                status = "Duplicate"
            else:
                mid = d.get("id") or (max(mon.monitors, default=0) + 1)
                mon.put(mid, {"id": mid, "type": d["type"], "value": float(d["value"]), "severity": d["severity"],
                              "transaction": bool(d.get("transaction", False)),
                              "component": ad.dm.component_dict(ck),
                              "variable": {"name": v.name, **({"instance": v.instance} if v.instance else {})}})
                mon.prime(mid)
                r["id"] = mid
        r["status"] = status
        if why:
            r["statusInfo"] = {"reasonCode": "InvalidValue" if status == "Rejected" else "UnsupportedType",
                               "additionalInfo": why[:512]}
        results.append(r)
    return {"setMonitoringResult": results}


def _out_of_range(v: Variable, kind: str, value: float) -> str | None:
    """N04: a threshold outside the variable's limits, or a delta larger than its range."""
    if not v.numeric:
        return None
    low, high = v.min_limit, v.max_limit
    if kind in THRESHOLDS and ((low is not None and value < low) or (high is not None and value > high)):
        return f"threshold {value:g} is outside {v.label}'s range {low:g}..{high:g}" if low is not None and \
            high is not None else f"threshold {value:g} is outside {v.label}'s range"
    if kind == "Delta" and (value < 0 or (low is not None and high is not None and value > high - low)):
        return f"delta {value:g} is larger than {v.label}'s range"
    return None


@routes.on("SetMonitoringLevel")
async def set_monitoring_level(ad: Ocpp201Adapter, p: dict) -> dict:
    if not 0 <= p["severity"] <= 9:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "ValueOutOfRange",
                                                     "additionalInfo": "severity must be 0 (Danger) to 9 (Debug)"}}
    ad.dm.set_actual("MonitoringCtrlr", "ActiveMonitoringLevel", p["severity"])
    return {"status": "Accepted"}


@routes.on("SetMonitoringBase")
async def set_monitoring_base(ad: Ocpp201Adapter, p: dict) -> dict:
    base = p["monitoringBase"]
    mon = _mon(ad)
    if base in ("FactoryDefault", "HardWiredOnly"):
        for mid in list(mon.monitors):
            mon.remove(mid)
    ad.dm.set_actual("MonitoringCtrlr", "ActiveMonitoringBase", base)
    return {"status": "Accepted"}


@routes.on("ClearVariableMonitoring")
async def clear_variable_monitoring(ad: Ocpp201Adapter, p: dict) -> dict:
    _limit(ad, "ClearVariableMonitoring", p["id"])
    mon = _mon(ad)
    return {"clearMonitoringResult": [{"id": mid, "status": "Accepted" if mon.remove(mid) else "NotFound"}
                                      for mid in p["id"]]}


@routes.on("GetMonitoringReport")
async def get_monitoring_report(ad: Ocpp201Adapter, p: dict) -> Any:
    mon = _mon(ad)
    types = {t for c in (p.get("monitoringCriteria") or CRITERIA) for t in CRITERIA.get(c, ())}
    wanted = p.get("componentVariable")
    grouped: dict[tuple, dict] = {}
    for m in sorted(mon.monitors.values(), key=lambda m: m["id"]):
        if m["type"] not in types:
            continue
        if wanted and not any(_matches(ad, m, cv) for cv in wanted):
            continue
        key = (repr(m["component"]), repr(m["variable"]))
        entry = grouped.setdefault(key, {"component": m["component"], "variable": m["variable"],
                                         "variableMonitoring": []})
        entry["variableMonitoring"].append({"id": m["id"], "transaction": m["transaction"], "value": m["value"],
                                            "type": m["type"], "severity": m["severity"]})
    monitors = list(grouped.values())
    if not monitors:
        return {"status": "EmptyResultSet"}

    async def report() -> None:
        per = ad.integer("DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport")
        await ad.send_parts("NotifyMonitoringReport", "monitor", monitors, per,
                            {"requestId": p["requestId"], "generatedAt": ad.now_iso()})

    return {"status": "Accepted"}, report


def _matches(ad: Ocpp201Adapter, m: dict, cv: dict) -> bool:
    comp = cv["component"]
    if comp["name"].lower() != m["component"]["name"].lower():
        return False
    if "evse" in comp and comp["evse"] != m["component"].get("evse"):
        return False
    var = cv.get("variable")
    return var is None or var["name"].lower() == m["variable"]["name"].lower()
