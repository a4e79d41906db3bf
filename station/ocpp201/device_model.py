"""OCPP 2.0.1 device model: components, variables and their attributes (Part 1 section 4, Part 2
appendix "Referenced Components and Variables").

Two halves:

- The definitions (:class:`Variable`, :func:`definitions`): every component and variable this
  station offers, with its attribute types (Actual, Target, MinSet, MaxSet), mutability per
  attribute, persistence, characteristics (dataType, unit, minLimit, maxLimit, valuesList) and
  default. Built once per process, immutable, shared by every station in it (a fleet of 10,000
  stations holds one copy).
- :class:`DeviceModel`, one per station: the station's EVSE/connector layout, its identity, and
  only the values that differ from the defaults (kept in memory and in the store, namespace
  ``dm201``). It answers GetVariables and SetVariables element by element, builds the reportData
  of GetBaseReport and GetReport, applies ``--ocpp-config`` and tells subscribers (the adapter)
  when a value changes.

Pure: no asyncio, no I/O except through the store passed in. Values are strings on the wire
(booleans ``true``/``false``, lists comma separated); :meth:`DeviceModel.value` gives them typed.
Component and variable names are matched case-insensitively; answers echo what was asked.
WriteOnly values (``SecurityCtrlr.BasicAuthPassword``) never appear in an answer, a report or
the log.

``python -m station.ocpp201.device_model --markdown`` prints docs/device-model.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from station.core.clock import parse_iso
from station.core.metering import SUPPORTED_MEASURANDS

NS = "dm201"

ATTRIBUTE_TYPES = ("Actual", "Target", "MinSet", "MaxSet")
DATA_TYPES = ("string", "decimal", "integer", "dateTime", "boolean", "OptionList", "SequenceList", "MemberList")
MUTABILITIES = ("ReadOnly", "WriteOnly", "ReadWrite")
REPORT_BASES = ("FullInventory", "ConfigurationInventory", "SummaryInventory")
COMPONENT_CRITERIA = ("Active", "Available", "Enabled", "Problem")
# SummaryInventory (B07): the availability and problem state of every component
SUMMARY_VARIABLES = frozenset({"AvailabilityState", "Available", "Problem", "Tripped", "Overload", "Fallback"})

# ComponentKey: (component name, component instance, evse id, connector id)
ComponentKey = tuple[str, str | None, int | None, int | None]
# VariableKey: (variable name, variable instance)
VariableKey = tuple[str, str | None]
Callback = Callable[[ComponentKey, VariableKey, Any], None]
Check = Callable[[str], str | None]
# Watcher: told of every change of any value (the CSMS's and the station's own): monitoring (N)
Watcher = Callable[[ComponentKey, "Variable", str, str], None]

STATION, EVSE, CONNECTOR = "station", "evse", "connector"
_SCOPES = {"EVSE": EVSE, "Connector": CONNECTOR}

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable of one component, as this station defines it (shared by all stations).

    ``attributes``: the attribute types it has, each with its mutability. ``scope``: which
    instances of the component carry it (``station``: the one component; ``evse``: one per EVSE;
    ``connector``: one per connector), taken from the component name. ``default``: the value
    (wire form) until someone sets one; ``default_from`` names an identity key that overrides it.
    ``volatile``: the station's own runtime value (``set_actual`` keeps it in memory only).
    ``required``: Part 2 marks it Required (a FullInventory must list it; TC_B_53)."""

    component: str
    name: str
    data_type: str
    attributes: tuple[tuple[str, str], ...] = (("Actual", "ReadWrite"),)
    instance: str | None = None
    scope: str = STATION
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] | None = None
    default: str | None = None
    default_from: str | None = None
    persistent: bool = True
    constant: bool = False
    volatile: bool = False
    reboot_required: bool = False
    secret: bool = False
    required: bool = False
    check: Check | None = field(default=None, compare=False)
    description: str = ""

    @property
    def key(self) -> VariableKey:
        return (self.name, self.instance)

    @property
    def label(self) -> str:
        """``Component.Variable[instance]``, for logs and problems."""
        return f"{self.component}.{self.name}" + (f"[{self.instance}]" if self.instance else "")

    def mutability(self, attribute: str) -> str | None:
        for attr, mut in self.attributes:
            if attr == attribute:
                return mut
        return None

    @property
    def monitorable(self) -> bool:
        """Monitors may watch it (N02): every value but a secret and the constants."""
        return not self.secret and not self.constant

    @property
    def numeric(self) -> bool:
        return self.data_type in ("integer", "decimal")

    @property
    def writable(self) -> bool:
        return any(mut != "ReadOnly" for _, mut in self.attributes)

    def characteristics(self) -> dict[str, Any]:
        """VariableCharacteristicsType of a report."""
        c: dict[str, Any] = {"dataType": self.data_type, "supportsMonitoring": self.monitorable}
        if self.unit:
            c["unit"] = self.unit
        if self.min_limit is not None:
            c["minLimit"] = self.min_limit
        if self.max_limit is not None:
            c["maxLimit"] = self.max_limit
        if self.values_list is not None:
            c["valuesList"] = ",".join(self.values_list)
        return c

    def validate(self, value: str) -> tuple[str, str] | None:
        """Problems with a wire value: ``(reasonCode, additionalInfo)``, or None if it is valid.
        Reason codes from Part 2 "Reason codes" (InvalidValue, ValueOutOfRange, ...)."""
        t = self.data_type
        if t == "integer" or t == "decimal":
            if not (_INTEGER if t == "integer" else _DECIMAL).fullmatch(value) or len(value) > 40:
                return "InvalidValue", f"{self.label} must be {'a whole number' if t == 'integer' else 'a number'}"
            number = int(value) if t == "integer" else float(value)
            if isinstance(number, float) and not math.isfinite(number):
                return "InvalidValue", f"{self.label} must be a finite number"
            if self.min_limit is not None and number < self.min_limit:
                return "ValueTooLow", f"{self.label} must be {self._range()}"
            if self.max_limit is not None and number > self.max_limit:
                return "ValueTooHigh", f"{self.label} must be {self._range()}"
        elif t == "boolean":
            if value.lower() not in ("true", "false"):
                return "InvalidValue", f"{self.label} must be true or false"
        elif t == "dateTime":
            try:
                parse_iso(value)
            except ValueError:
                return "InvalidValue", f"{self.label} must be an RFC 3339 date and time"
        elif t == "string":
            if self.max_limit is not None and len(value) > self.max_limit:
                return "ValueTooHigh", f"{self.label} must be at most {self.max_limit:g} characters"
            if self.min_limit is not None and len(value) < self.min_limit:
                return "ValueTooLow", f"{self.label} must be at least {self.min_limit:g} characters"
        elif t == "OptionList":
            assert self.values_list is not None
            if value not in self.values_list:
                return "InvalidValue", f"{self.label} must be one of {','.join(self.values_list)}"
        else:  # MemberList, SequenceList
            members = split_list(value)
            if len(set(members)) != len(members):
                return "InvalidValue", f"{self.label} lists a member twice"
            if self.values_list is not None:
                bad = [m for m in members if m not in self.values_list]
                if bad:
                    return "InvalidValue", (f"{self.label}: {','.join(bad)[:200]} not among "
                                            f"{','.join(self.values_list)}")[:512]
            if self.max_limit is not None and len(members) > self.max_limit:
                return "ValueTooHigh", f"{self.label} has at most {self.max_limit:g} members"
        if self.check is not None:
            problem = self.check(value)
            if problem:
                return "InvalidValue", f"{self.label}: {problem}"
        return None

    def _range(self) -> str:
        lo, hi = self.min_limit, self.max_limit
        if lo is not None and hi is not None:
            return f"{lo:g} to {hi:g}"
        return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"

    def typed(self, value: str | None) -> Any:
        """The Python value of a wire value: int, float, bool, list (Member/SequenceList) or str."""
        if value is None:
            return None
        t = self.data_type
        if t == "integer":
            return int(value)
        if t == "decimal":
            return float(value)
        if t == "boolean":
            return value.lower() == "true"
        if t in ("MemberList", "SequenceList"):
            return split_list(value)
        return value

    def normalized(self, value: str) -> str:
        """The stored form of a valid wire value (booleans in lower case, lists without blanks)."""
        if self.data_type == "boolean":
            return value.lower()
        if self.data_type in ("MemberList", "SequenceList"):
            return ",".join(split_list(value))
        return value


def split_list(value: str) -> list[str]:
    """The members of a MemberList / SequenceList wire value ("a,b" -> ["a", "b"])."""
    return [m.strip() for m in value.split(",") if m.strip()]


def wire(value: Any) -> str:
    """The wire form of a Python value (True -> "true", [a, b] -> "a,b")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the definitions -------------------------------------------------------------------------

RO, RW, WO = "ReadOnly", "ReadWrite", "WriteOnly"
AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
TX_POINTS = ("ParkingBayOccupancy", "EVConnected", "Authorized", "DataSigned", "PowerPathClosed", "EnergyTransfer")
CONNECTOR_TYPES = (
    "cCCS1", "cCCS2", "cG105", "cTesla", "cType1", "cType2", "s309-1P-16A", "s309-1P-32A", "s309-3P-16A",
    "s309-3P-32A", "sBS1361", "sCEE-7-7", "sType2", "sType3", "Other1PhMax16A", "Other1PhOver16A",
    "Other3Ph", "Pan", "wInductive", "wResonant", "Undetermined", "Unknown",
)
# MeasurandEnumType of OCPP 2.0.1 (1.6's Temperature is not one); the station offers those its
# meter engine can deliver (station/core/metering.py)
MEASURAND_ENUM = frozenset({
    "Current.Export", "Current.Import", "Current.Offered", "Energy.Active.Export.Register",
    "Energy.Active.Import.Register", "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval", "Energy.Active.Import.Interval", "Energy.Active.Net",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval", "Energy.Reactive.Net",
    "Energy.Apparent.Net", "Energy.Apparent.Import", "Energy.Apparent.Export", "Frequency",
    "Power.Active.Export", "Power.Active.Import", "Power.Factor", "Power.Offered", "Power.Reactive.Export",
    "Power.Reactive.Import", "SoC", "Voltage",
})
MEASURANDS = tuple(m for m in SUPPORTED_MEASURANDS if m in MEASURAND_ENUM)
TIME_SOURCES = ("Heartbeat", "NTP", "GPS", "RealTimeClock", "MobileNetwork", "RadioTimeTransmitter")
# the limits this station's engines keep (reported read-only)
ITEMS_PER_MESSAGE = {"GetReport": 100, "GetVariables": 50, "SetVariables": 50}
BYTES_PER_MESSAGE = {"GetReport": 65_000, "GetVariables": 65_000, "SetVariables": 65_000}
CONFIGURATION_VALUE_SIZE = 1000  # SetVariableData.attributeValue maxLength
REPORTING_VALUE_SIZE = 2500  # GetVariableResult.attributeValue / VariableAttribute.value maxLength
LOCAL_LIST_MAX = 1000
LOCAL_LIST_ITEMS_PER_MESSAGE = 250
CHARGING_PROFILES_MAX = 20
CERTIFICATE_CHAIN_MAX = 10_000  # CertificateSignedRequest.certificateChain maxLength


def _network_slots(value: str) -> str | None:
    for m in split_list(value):
        if not m.isdigit() or int(m) > 9:
            return f"{m!r} is not a configuration slot (0-9)"
    return None


def _not_empty(value: str) -> str | None:
    return None if split_list(value) else "needs at least one member"


def _v(component: str, name: str, data_type: str, default: str | None = None, *, mut: str = RW,
       attrs: tuple[tuple[str, str], ...] | None = None, values: Iterable[str] | None = None,
       **kw: Any) -> Variable:
    if data_type == "boolean" and default is None:
        default = "false"
    return Variable(component, name, data_type, attributes=attrs or (("Actual", mut),),
                    scope=_SCOPES.get(component, STATION), default=default,
                    values_list=tuple(values) if values is not None else None, **kw)


def _build() -> tuple[Variable, ...]:
    m = MEASURANDS
    s, i, b = "string", "integer", "boolean"
    vs: list[Variable] = []
    add = vs.append

    c = "ChargingStation"
    add(_v(c, "AvailabilityState", "OptionList", "Available", mut=RO, values=AVAILABILITY_STATES,
           volatile=True, persistent=False, required=True, description="Available, Occupied, Reserved, Unavailable or Faulted"))
    add(_v(c, "Available", b, "true", mut=RO, volatile=True, persistent=False, required=True,
           description="the station is (or can be) operative"))
    add(_v(c, "Model", s, "", mut=RO, default_from="model", max_limit=20, constant=True, required=True))
    add(_v(c, "VendorName", s, "", mut=RO, default_from="vendor", max_limit=50, constant=True, required=True))
    add(_v(c, "SupplyPhases", i, "3", mut=RO, min_limit=0, max_limit=3, constant=True, required=True,
           description="phases the grid connection supplies"))
    add(_v(c, "Problem", b, mut=RO, volatile=True, persistent=False, description="a fault is present"))

    c = "EVSE"
    add(_v(c, "AvailabilityState", "OptionList", "Available", mut=RO, values=AVAILABILITY_STATES,
           volatile=True, persistent=False, required=True))
    add(_v(c, "Available", b, "true", mut=RO, volatile=True, persistent=False, required=True))
    add(_v(c, "Power", "decimal", "0", attrs=(("Actual", RO), ("MaxSet", RO)), unit="W", min_limit=0,
           volatile=True, persistent=False, required=True, description="Actual: present power; MaxSet: the EVSE's maximum"))
    add(_v(c, "SupplyPhases", i, "3", mut=RO, min_limit=0, max_limit=3, constant=True, required=True))
    add(_v(c, "Problem", b, "false", mut=RO, volatile=True, persistent=False, description="a fault is present"))

    c = "Connector"
    add(_v(c, "AvailabilityState", "OptionList", "Available", mut=RO, values=AVAILABILITY_STATES,
           volatile=True, persistent=False, required=True))
    add(_v(c, "Available", b, "true", mut=RO, volatile=True, persistent=False, required=True))
    add(_v(c, "ConnectorType", "OptionList", "sType2", mut=RO, values=CONNECTOR_TYPES, constant=True, required=True))
    add(_v(c, "Problem", b, "false", mut=RO, volatile=True, persistent=False, description="a fault is present"))
    add(_v(c, "SupplyPhases", i, "3", mut=RO, min_limit=0, max_limit=3, constant=True, required=True))

    c = "AlignedDataCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "Measurands", "MemberList", "Energy.Active.Import.Register", values=m, required=True,
           description="measurands of clock-aligned MeterValues"))
    add(_v(c, "Interval", i, "900", unit="s", min_limit=0, max_limit=DAY, required=True,
           description="seconds between clock-aligned samples from midnight; 0: none"))
    add(_v(c, "SendDuringIdle", b, "false",
           description="true: clock-aligned values only while no transaction runs (none during one)"))
    add(_v(c, "TxEndedMeasurands", "MemberList", "", values=m, required=True))
    add(_v(c, "TxEndedInterval", i, "0", unit="s", min_limit=0, max_limit=DAY, required=True))

    c = "AuthCacheCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "Available", b, "true", mut=RO, constant=True))
    add(_v(c, "LifeTime", i, "86400", unit="s", min_limit=0, max_limit=365 * DAY,
           description="seconds an entry stays valid; 0: no limit"))
    add(_v(c, "Storage", i, "0", mut=RO, unit="B", min_limit=0, max_limit=1_000_000, volatile=True,
           persistent=False, description="bytes the cache uses now"))
    add(_v(c, "Policy", "OptionList", "LRU", values=("LRU",), description="which entry goes when the cache is full"))
    add(_v(c, "DisablePostAuthorize", b, "false"))

    c = "AuthCtrlr"
    add(_v(c, "Enabled", b, "true", required=True, description="false: every id token is accepted without asking"))
    add(_v(c, "AdditionalInfoItemsPerMessage", i, "10", mut=RO, constant=True))
    add(_v(c, "AuthorizeRemoteStart", b, "true", required=True))
    add(_v(c, "LocalAuthorizeOffline", b, "true", required=True))
    add(_v(c, "LocalPreAuthorize", b, "false", required=True))
    add(_v(c, "OfflineTxForUnknownIdEnabled", b, "false"))
    add(_v(c, "DisableRemoteAuthorization", b, "false"))
    add(_v(c, "MasterPassGroupId", s, "", max_limit=36, description="empty: no master pass"))

    c = "ClockCtrlr"
    add(_v(c, "DateTime", "dateTime", "", mut=RO, volatile=True, persistent=False, required=True,
           description="the station's present time"))
    add(_v(c, "TimeSource", "SequenceList", "Heartbeat", values=TIME_SOURCES, check=_not_empty, required=True))

    # -- O (display messages) and I (tariff and cost): station/ocpp201/handlers/display.py ------
    c = "DisplayMessageCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "Available", b, "true", mut=RO, constant=True))
    add(_v(c, "DisplayMessages", i, "10", mut=RO, constant=True, required=True,
           description="how many display messages the station keeps"))
    add(_v(c, "SupportedFormats", "MemberList", "ASCII,UTF8", mut=RO, values=("ASCII", "HTML", "URI", "UTF8"),
           constant=True, required=True))
    add(_v(c, "SupportedPriorities", "MemberList", "AlwaysFront,InFront,NormalCycle", mut=RO,
           values=("AlwaysFront", "InFront", "NormalCycle"), constant=True, required=True))
    c = "TariffCostCtrlr"
    add(_v(c, "Enabled", b, "true", instance="Tariff"))
    add(_v(c, "Enabled", b, "true", instance="Cost"))
    add(_v(c, "Currency", s, "EUR", max_limit=3, required=True))

    # -- N (monitoring): station/ocpp201/handlers/monitoring.py --------------------------------
    c = "MonitoringCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "Available", b, "true", mut=RO, constant=True))
    for inst in ("ClearVariableMonitoring", "SetVariableMonitoring"):
        add(_v(c, "ItemsPerMessage", i, "20", instance=inst, mut=RO, constant=True, required=True))
        add(_v(c, "BytesPerMessage", i, "65000", instance=inst, mut=RO, constant=True, required=True))
    add(_v(c, "OfflineQueuingSeverity", i, "2", min_limit=0, max_limit=9,
           description="events this severe or worse (lower number) are kept while off line"))
    add(_v(c, "ActiveMonitoringBase", "OptionList", "All", mut=RO, values=("All", "FactoryDefault", "HardWiredOnly")))
    add(_v(c, "ActiveMonitoringLevel", i, "9", mut=RO, min_limit=0, max_limit=9))

    c = "DeviceDataCtrlr"
    for inst, n in ITEMS_PER_MESSAGE.items():
        add(_v(c, "ItemsPerMessage", i, str(n), instance=inst, mut=RO, constant=True, required=True))
    for inst, n in BYTES_PER_MESSAGE.items():
        add(_v(c, "BytesPerMessage", i, str(n), instance=inst, mut=RO, constant=True, required=True))
    add(_v(c, "ConfigurationValueSize", i, str(CONFIGURATION_VALUE_SIZE), mut=RO, constant=True))
    add(_v(c, "ReportingValueSize", i, str(REPORTING_VALUE_SIZE), mut=RO, constant=True))
    add(_v(c, "ValueSize", i, str(REPORTING_VALUE_SIZE), mut=RO, constant=True))

    c = "LocalAuthListCtrlr"
    add(_v(c, "Enabled", b, "true", required=True))
    add(_v(c, "Available", b, "true", mut=RO, constant=True))
    add(_v(c, "Entries", i, "0", mut=RO, min_limit=0, max_limit=LOCAL_LIST_MAX, volatile=True,
           persistent=False, required=True, description="entries in the local list now"))
    add(_v(c, "ItemsPerMessage", i, str(LOCAL_LIST_ITEMS_PER_MESSAGE), mut=RO, constant=True, required=True))
    add(_v(c, "BytesPerMessage", i, "65000", mut=RO, constant=True, required=True))
    add(_v(c, "Storage", i, "0", mut=RO, unit="B", min_limit=0, volatile=True, persistent=False))
    add(_v(c, "DisablePostAuthorize", b, "false"))

    c = "OCPPCommCtrlr"
    add(_v(c, "ActiveNetworkProfile", i, "0", mut=RO, volatile=True, persistent=False,
           description="the configuration slot in use"))
    add(_v(c, "FileTransferProtocols", "MemberList", "HTTP,HTTPS,FTP", mut=RO, values=("HTTP", "HTTPS", "FTP"),
           constant=True, required=True))
    add(_v(c, "HeartbeatInterval", i, "300", unit="s", min_limit=1, max_limit=DAY))
    add(_v(c, "MessageTimeout", i, "30", instance="Default", mut=RO, unit="s", required=True,
           description="set by the network connection profile"))
    add(_v(c, "MessageAttemptInterval", i, "60", instance="TransactionEvent", unit="s", min_limit=0,
           max_limit=3600, required=True))
    add(_v(c, "MessageAttempts", i, "3", instance="TransactionEvent", min_limit=0, max_limit=100, required=True))
    add(_v(c, "NetworkConfigurationPriority", "SequenceList", "0", check=_network_slots,
           required=True, description="configuration slots to try, in order; used from the next connection"))
    add(_v(c, "NetworkProfileConnectionAttempts", i, "3", min_limit=1, max_limit=100, required=True))
    add(_v(c, "OfflineThreshold", i, "60", unit="s", min_limit=0, max_limit=DAY, required=True))
    add(_v(c, "QueueAllMessages", b, "false"))
    add(_v(c, "ResetRetries", i, "1", min_limit=0, max_limit=100, required=True))
    add(_v(c, "RetryBackOffRandomRange", i, "10", unit="s", min_limit=0, max_limit=3600, required=True))
    add(_v(c, "RetryBackOffRepeatTimes", i, "3", min_limit=0, max_limit=100, required=True))
    add(_v(c, "RetryBackOffWaitMinimum", i, "3", unit="s", min_limit=0, max_limit=3600, required=True))
    add(_v(c, "UnlockOnEVSideDisconnect", b, "true", required=True))
    add(_v(c, "WebSocketPingInterval", i, "60", unit="s", min_limit=0, max_limit=3600, required=True,
           description="0: no pings from the station"))

    c = "ReservationCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "Available", b, "true", mut=RO, constant=True))
    add(_v(c, "NonEvseSpecific", b, "true", description="reservations without an EVSE are accepted"))

    c = "SampledDataCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "SignReadings", b, "false", mut=RO, constant=True))
    add(_v(c, "TxEndedMeasurands", "MemberList", "Energy.Active.Import.Register", values=m, required=True))
    add(_v(c, "TxEndedInterval", i, "0", unit="s", min_limit=0, max_limit=DAY, required=True))
    add(_v(c, "TxStartedMeasurands", "MemberList", "Energy.Active.Import.Register", values=m, required=True))
    add(_v(c, "TxUpdatedMeasurands", "MemberList", "Energy.Active.Import.Register,Power.Active.Import",
           values=m, required=True))
    add(_v(c, "TxUpdatedInterval", i, "60", unit="s", min_limit=0, max_limit=DAY, required=True))
    add(_v(c, "RegisterValuesWithoutPhases", b, "false"))

    c = "SecurityCtrlr"
    add(_v(c, "AdditionalRootCertificateCheck", b, "false", mut=RO, constant=True, required=True))
    add(_v(c, "BasicAuthPassword", s, None, mut=WO, min_limit=16, max_limit=40, secret=True, required=True,
           description="HTTP Basic Authentication password (security profiles 1 and 2)"))
    add(_v(c, "CertificateEntries", i, "0", mut=RO, min_limit=0, volatile=True, persistent=False, required=True))
    add(_v(c, "CertSigningRepeatTimes", i, "3", min_limit=0, max_limit=100))
    add(_v(c, "CertSigningWaitMinimum", i, "30", unit="s", min_limit=0, max_limit=DAY))
    add(_v(c, "Identity", s, "", mut=RO, default_from="id", max_limit=48, required=True))
    add(_v(c, "MaxCertificateChainSize", i, str(CERTIFICATE_CHAIN_MAX), mut=RO, constant=True))
    add(_v(c, "OrganizationName", s, "", default_from="organization", max_limit=50, required=True))
    add(_v(c, "SecurityProfile", i, "1", mut=RO, default_from="security_profile", min_limit=0, max_limit=3,
           required=True, description="changed only upwards, by the security engine"))

    c = "SmartChargingCtrlr"
    add(_v(c, "Enabled", b, "true"))
    add(_v(c, "Available", b, "true", mut=RO, constant=True))
    add(_v(c, "EntriesChargingProfiles", i, "0", mut=RO, min_limit=0, max_limit=CHARGING_PROFILES_MAX,
           volatile=True, persistent=False, required=True))
    add(_v(c, "ExternalControlSignalsEnabled", b, "false"))
    add(_v(c, "LimitChangeSignificance", "decimal", "1", unit="Percent", min_limit=0, max_limit=100, required=True))
    add(_v(c, "NotifyChargingLimitWithSchedules", b, "false"))
    add(_v(c, "PeriodsPerSchedule", i, "48", mut=RO, constant=True, required=True))
    add(_v(c, "Phases3to1", b, "false", mut=RO, constant=True))
    add(_v(c, "ProfileStackLevel", i, "10", mut=RO, constant=True, required=True))
    add(_v(c, "RateUnit", "MemberList", "A,W", mut=RO, values=("A", "W"), constant=True, required=True))

    c = "TxCtrlr"
    add(_v(c, "EVConnectionTimeOut", i, "60", unit="s", min_limit=1, max_limit=3600, required=True,
           description="seconds between authorization and plug-in (or back) before giving up"))
    add(_v(c, "MaxEnergyOnInvalidId", i, "0", unit="Wh", min_limit=0, max_limit=1_000_000_000))
    add(_v(c, "StopTxOnEVSideDisconnect", b, "true", required=True))
    add(_v(c, "StopTxOnInvalidId", b, "true", required=True))
    add(_v(c, "TxBeforeAcceptedEnabled", b, "false"))
    add(_v(c, "TxStartPoint", "MemberList", "PowerPathClosed", values=TX_POINTS, check=_not_empty, required=True))
    add(_v(c, "TxStopPoint", "MemberList", "EVConnected,Authorized", values=TX_POINTS, check=_not_empty, required=True))

    # -- firmware management (block L: handlers/firmware.py) ----------------------------------
    c = "ChargingStation"
    add(_v(c, "AllowNewSessionsPendingFirmwareUpdate", b, "false",
           description="true: EVSEs stay available while a firmware installation waits for transactions to end"))
    return tuple(vs)


@dataclass(frozen=True)
class Definitions:
    """All variables, indexed; immutable and shared by every DeviceModel of the process."""

    variables: tuple[Variable, ...]
    # component name (lower case) -> its variables in definition order
    by_component: Mapping[str, tuple[Variable, ...]]
    # (component lower, variable lower, variable instance lower or None) -> Variable
    index: Mapping[tuple[str, str, str | None], Variable]
    # component name (lower case) -> (defined name, scope)
    components: Mapping[str, tuple[str, str]]

    @classmethod
    def of(cls, variables: Iterable[Variable]) -> Definitions:
        vs = tuple(variables)
        by: dict[str, list[Variable]] = {}
        index: dict[tuple[str, str, str | None], Variable] = {}
        comps: dict[str, tuple[str, str]] = {}
        for v in vs:
            key = (v.component.lower(), v.name.lower(), v.instance.lower() if v.instance else None)
            if key in index:
                raise ValueError(f"{v.label} is defined twice")
            if v.data_type not in DATA_TYPES or any(a not in ATTRIBUTE_TYPES or m not in MUTABILITIES
                                                     for a, m in v.attributes):
                raise ValueError(f"{v.label}: bad data type or attribute")
            if v.data_type == "OptionList" and not v.values_list:
                raise ValueError(f"{v.label}: an OptionList needs a valuesList")
            index[key] = v
            by.setdefault(key[0], []).append(v)
            comps.setdefault(key[0], (v.component, v.scope))
        return cls(vs, {k: tuple(x) for k, x in by.items()}, index, comps)


@cache
def definitions() -> Definitions:
    """The station's device model definitions: built once per process, shared."""
    return Definitions.of(_build())


# -- one station's device model ----------------------------------------------------------------

class KeyValueStore(Protocol):
    """What the device model uses of station/store.py (Store and MemoryStore have it)."""

    def put(self, ns: str, key: str, value: Any) -> None: ...
    def items(self, ns: str) -> dict[str, Any]: ...
    def delete(self, ns: str, key: str) -> None: ...
    def atomic(self) -> contextlib.AbstractContextManager[None]: ...


class DeviceModel:
    """One station's device model: a reference to the shared definitions, its layout and
    identity, and only the values that differ from the defaults.

    ``layout``: {evse_id: [connector_ids]}. ``identity``: vendor, model, serial,
    firmware_version, and optionally id (SecurityCtrlr.Identity), organization,
    security_profile. ``store``: a :class:`KeyValueStore` (station/store.py Store or MemoryStore)."""

    __slots__ = ("store", "layout", "identity", "log", "defs", "_values", "_volatile", "_subs",
                 "_providers", "_checks", "load_problems", "_watchers")

    def __init__(self, store: KeyValueStore, layout: Mapping[int, Collection[int]], identity: Mapping[str, Any],
                 log: logging.Logger | None = None, *, defs: Definitions | None = None) -> None:
        self.store = store
        self.layout = layout
        self.identity = identity
        self.log = log or logging.getLogger(__name__)
        self.defs = defs or definitions()
        # (ComponentKey, VariableKey, attribute) -> wire value that differs from the default
        self._values: dict[tuple[ComponentKey, VariableKey, str], str] = {}
        self._volatile: dict[tuple[ComponentKey, VariableKey, str], str] | None = None
        self._subs: dict[tuple[str, str, str | None], list[Callback]] | None = None
        self._watchers: list[Watcher] | None = None
        self._providers: dict[tuple[str, str, str | None], Callable[[], Any]] | None = None
        self._checks: dict[tuple[str, str, str | None], Check] | None = None
        self.load_problems: list[str] = []
        self._load()

    # -- persistence ----------------------------------------------------------------------------
    @staticmethod
    def _store_key(ck: ComponentKey, vk: VariableKey, attr: str) -> str:
        name, inst, evse, conn = ck
        return "|".join((name, inst or "", "" if evse is None else str(evse),
                         "" if conn is None else str(conn), vk[0], vk[1] or "", attr))

    def _load(self) -> None:
        for key, value in self.store.items(NS).items():
            problem = None
            parts = key.split("|")
            found = None
            if len(parts) == 7 and isinstance(value, str):
                comp, cinst, evse, conn, var, vinst, attr = parts
                ck = (comp, cinst or None, int(evse) if evse.isdigit() else None,
                      int(conn) if conn.isdigit() else None)
                found = self._resolve(self._component_dict(ck), {"name": var, **({"instance": vinst} if vinst else {})})
            if not isinstance(found, tuple):
                problem = "not a variable of this station"
            else:
                ck, v = found
                if v.mutability(attr) is None:
                    problem = f"no {attr} attribute"
                elif v.volatile:
                    problem = "a runtime value, never stored"
                else:
                    bad = v.validate(value)
                    if bad:
                        problem = bad[1]
            if problem:
                # an older release or another layout stored it: never fail a start over it
                self.load_problems.append(f"{key}: {problem}")
                self.log.error("device model: stored value of %s not used (%s)", key.replace("|", " "), problem)
                continue
            self._values[(ck, v.key, attr)] = value

    # -- components -----------------------------------------------------------------------------
    def component_keys(self, name: str | None = None) -> list[ComponentKey]:
        """Every component instance of this station (of one component name if given), in report
        order: ChargingStation, EVSE n and its connectors, then the controllers."""
        keys: list[ComponentKey] = []
        for lname, (cname, scope) in self.defs.components.items():
            if name is not None and lname != name.lower():
                continue
            if scope == STATION:
                keys.append((cname, None, None, None))
            elif scope == EVSE:
                keys.extend((cname, None, e, None) for e in sorted(self.layout))
            else:
                keys.extend((cname, None, e, c) for e in sorted(self.layout) for c in sorted(self.layout[e]))

        def order(k: ComponentKey) -> tuple:
            rank = {"ChargingStation": 0, "EVSE": 1, "Connector": 1}.get(k[0], 2)
            return (rank, k[2] or 0, k[3] or 0, k[0] != "EVSE", k[0])

        return sorted(keys, key=order)

    @staticmethod
    def component_dict(ck: ComponentKey) -> dict[str, Any]:
        """The ComponentType of a component key."""
        return DeviceModel._component_dict(ck)

    @staticmethod
    def _component_dict(ck: ComponentKey) -> dict[str, Any]:
        name, inst, evse, conn = ck
        d: dict[str, Any] = {"name": name}
        if inst:
            d["instance"] = inst
        if evse is not None:
            d["evse"] = {"id": evse} if conn is None else {"id": evse, "connectorId": conn}
        return d

    def _component_key(self, component: Mapping[str, Any]) -> ComponentKey | None:
        """The component instance a ComponentType names, or None if this station has no such one."""
        name = str(component.get("name", ""))
        known = self.defs.components.get(name.lower())
        if known is None or component.get("instance"):
            return None
        cname, scope = known
        evse = component.get("evse")
        if scope == STATION:
            return (cname, None, None, None) if evse is None else None
        if not isinstance(evse, Mapping) or evse.get("id") not in self.layout:
            return None
        eid, conn = evse["id"], evse.get("connectorId")
        if scope == EVSE:
            return (cname, None, eid, None) if conn is None else None
        return (cname, None, eid, conn) if conn in self.layout[eid] else None

    def _resolve(self, component: Mapping[str, Any], variable: Mapping[str, Any]
                 ) -> tuple[ComponentKey, Variable] | str:
        """(component key, variable), or the status saying which one is unknown."""
        ck = self._component_key(component)
        if ck is None:
            return "UnknownComponent"
        inst = variable.get("instance")
        v = self.defs.index.get((ck[0].lower(), str(variable.get("name", "")).lower(),
                                 str(inst).lower() if inst else None))
        return "UnknownVariable" if v is None else (ck, v)

    def _variable(self, component: str, variable: str, instance: str | None) -> Variable:
        v = self.defs.index.get((component.lower(), variable.lower(), instance.lower() if instance else None))
        if v is None:
            raise KeyError(f"{component}.{variable}" + (f"[{instance}]" if instance else "") + " is not defined")
        return v

    @staticmethod
    def _ck(v: Variable, evse: int | None, connector: int | None) -> ComponentKey:
        if v.scope == STATION:
            return (v.component, None, None, None)
        if evse is None or (v.scope == CONNECTOR and connector is None):
            raise KeyError(f"{v.label} needs the evse" + (" and connector" if v.scope == CONNECTOR else ""))
        return (v.component, None, evse, connector if v.scope == CONNECTOR else None)

    # -- values ---------------------------------------------------------------------------------
    def _default(self, v: Variable) -> str | None:
        if v.default_from is not None and self.identity.get(v.default_from) is not None:
            return wire(self.identity[v.default_from])
        return v.default

    def _raw(self, ck: ComponentKey, v: Variable, attr: str) -> str | None:
        key = (ck, v.key, attr)
        if key in self._values:
            return self._values[key]
        if self._volatile is not None and key in self._volatile:
            return self._volatile[key]
        if attr == "Actual" and self._providers:
            fn = self._providers.get((v.component, v.name, v.instance))
            if fn is not None:
                return wire(fn())
        return self._default(v)

    def value(self, component: str, variable: str, *, instance: str | None = None, evse: int | None = None,
              connector: int | None = None, attribute: str = "Actual") -> Any:
        """A value, typed (int, float, bool, str, or list for MemberList/SequenceList); None if it
        has none. WriteOnly values too (they are the station's to use, never to report). Raises
        KeyError for a variable or attribute this station does not define."""
        v = self._variable(component, variable, instance)
        if v.mutability(attribute) is None:
            raise KeyError(f"{v.label} has no {attribute} attribute")
        return v.typed(self._raw(self._ck(v, evse, connector), v, attribute))

    def set_actual(self, component: str, variable: str, value: Any, *, instance: str | None = None,
                   evse: int | None = None, connector: int | None = None, attribute: str = "Actual") -> None:
        """The station's own value (AvailabilityState, Entries, SecurityProfile, ...), whatever the
        mutability. Volatile variables stay in memory, the others are persisted. Subscribers are
        not told (the station itself made the change). Raises ValueError for an invalid value."""
        v = self._variable(component, variable, instance)
        if v.mutability(attribute) is None:
            raise KeyError(f"{v.label} has no {attribute} attribute")
        ck = self._ck(v, evse, connector)
        text = wire(value)
        problem = v.validate(text)
        if problem:
            raise ValueError(problem[1])
        text = v.normalized(text)
        key = (ck, v.key, attribute)
        before = self._raw(ck, v, attribute) if self._watchers else None
        if v.volatile:
            if self._volatile is None:
                self._volatile = {}
            self._volatile[key] = text
        else:
            with self.store.atomic():
                self._write(key, v, text)
            self._remember(key, v, text)
        if self._watchers and before != text:
            self._watched(ck, v, attribute, text)

    def watch(self, callback: Watcher) -> None:
        """``callback(component_key, variable, attribute, new_text)`` after any value changed."""
        if self._watchers is None:
            self._watchers = []
        self._watchers.append(callback)

    def _watched(self, ck: ComponentKey, v: Variable, attribute: str, text: str) -> None:
        for cb in self._watchers or ():
            try:
                cb(ck, v, attribute, text)
            except Exception:  # noqa: BLE001 - the value is set; a watcher must not stop the rest
                self.log.exception("device model: watcher of %s failed", v.label)

    def resolve(self, component: Mapping[str, Any], variable: Mapping[str, Any]
                ) -> tuple[ComponentKey, Variable] | str:
        """(component key, variable) a ComponentType / VariableType names, or UnknownComponent /
        UnknownVariable."""
        return self._resolve(component, variable)

    def raw(self, ck: ComponentKey, v: Variable, attribute: str = "Actual") -> str | None:
        """A value in wire form (None: it has none)."""
        return self._raw(ck, v, attribute)


    def provide(self, component: str, variable: str, getter: Callable[[], Any], *,
                instance: str | None = None) -> None:
        """Read the Actual value from ``getter()`` each time (ClockCtrlr.DateTime, live counters)."""
        v = self._variable(component, variable, instance)
        if self._providers is None:
            self._providers = {}
        self._providers[(v.component, v.name, v.instance)] = getter

    def add_check(self, component: str, variable: str, check: Check, *, instance: str | None = None) -> None:
        """A station-specific check of values the CSMS sets (e.g. NetworkConfigurationPriority must
        name configured slots): ``check(value) -> problem or None``."""
        v = self._variable(component, variable, instance)
        if self._checks is None:
            self._checks = {}
        self._checks[(v.component, v.name, v.instance)] = check

    def subscribe(self, component: str, variable: str, callback: Callback, *, instance: str | None = None) -> None:
        """``callback(component_key, variable_key, new_value)`` after a SetVariables or config file
        changed this variable (of any EVSE / connector; ``instance`` as the variable defines it).
        ``new_value`` is typed. Not called for :meth:`set_actual` (the station's own changes)."""
        v = self._variable(component, variable, instance)
        if self._subs is None:
            self._subs = {}
        self._subs.setdefault((v.component, v.name, v.instance), []).append(callback)

    def _write(self, key: tuple[ComponentKey, VariableKey, str], v: Variable, text: str) -> None:
        """Persist one value (inside the caller's ``store.atomic()``); a default is not stored."""
        skey = self._store_key(*key)
        if text == self._default(v):
            self.store.delete(NS, skey)
        else:
            self.store.put(NS, skey, text)

    def _remember(self, key: tuple[ComponentKey, VariableKey, str], v: Variable, text: str) -> None:
        """Keep a value just persisted in memory (only if it differs from the default)."""
        if text == self._default(v):
            self._values.pop(key, None)
        else:
            self._values[key] = text

    def _notify(self, changes: list[tuple[ComponentKey, Variable, str]]) -> None:
        if not self._subs:
            return
        for ck, v, attr in changes:
            for cb in self._subs.get((v.component, v.name, v.instance), ()):
                try:
                    cb(ck, v.key, v.typed(self._raw(ck, v, attr)))
                except Exception:  # noqa: BLE001 - the value is set; one subscriber must not stop the rest
                    self.log.exception("device model: subscriber of %s failed", v.label)

    # -- GetVariables / SetVariables ------------------------------------------------------------
    def _limit(self, variable: str, fallback: int) -> int:
        v = self.defs.index.get(("devicedatactrlr", variable.lower(), None))
        return int(self._raw(("DeviceDataCtrlr", None, None, None), v, "Actual") or fallback) if v else fallback

    def get_variables(self, get_variable_data: list[dict]) -> list[dict]:
        """GetVariablesRequest.getVariableData -> GetVariablesResponse.getVariableResult, each
        element answered on its own."""
        size = self._limit("ReportingValueSize", REPORTING_VALUE_SIZE)
        results = []
        for item in get_variable_data:
            attr = item.get("attributeType", "Actual")
            r: dict[str, Any] = {"attributeType": attr, "component": item.get("component"),
                                 "variable": item.get("variable")}
            found = self._resolve(item.get("component") or {}, item.get("variable") or {})
            if isinstance(found, str):
                r["attributeStatus"] = found
            else:
                ck, v = found
                mut = v.mutability(attr)
                if mut is None:
                    r["attributeStatus"] = "NotSupportedAttributeType"
                elif mut == WO:
                    r["attributeStatus"] = "Rejected"
                    r["attributeStatusInfo"] = {"reasonCode": "WriteOnly",
                                                "additionalInfo": f"{v.label} is write-only"}
                else:
                    r["attributeStatus"] = "Accepted"
                    value = self._raw(ck, v, attr)
                    r["attributeValue"] = ("" if value is None else value)[:size]
            results.append(r)
        return results

    def _check_set(self, item: Mapping[str, Any], source: str
                   ) -> tuple[str, dict | None, tuple[ComponentKey, Variable, str, str] | None]:
        """(status, statusInfo, change) for one SetVariableData, nothing applied."""
        attr = item.get("attributeType", "Actual")
        found = self._resolve(item.get("component") or {}, item.get("variable") or {})
        if isinstance(found, str):
            return found, None, None
        ck, v = found
        mut = v.mutability(attr)
        if mut is None:
            return "NotSupportedAttributeType", None, None
        value = item.get("attributeValue")
        if not isinstance(value, str):
            return "Rejected", {"reasonCode": "InvalidValue", "additionalInfo": "attributeValue must be a string"}, None
        if mut == RO:
            if source != "CSMS" and v.normalized(value) == self._raw(ck, v, attr):
                return "Accepted", None, None  # a config file may restate a read-only value
            return "Rejected", {"reasonCode": "ReadOnly", "additionalInfo": f"{v.label} is read-only"}, None
        limit = self._limit("ConfigurationValueSize", CONFIGURATION_VALUE_SIZE)
        if len(value) > limit:
            return "Rejected", {"reasonCode": "TooLargeElement",
                                "additionalInfo": f"{v.label}: at most {limit} characters"}, None
        problem = v.validate(value)
        if problem is None and self._checks:
            check = self._checks.get((v.component, v.name, v.instance))
            why = check(value) if check else None
            problem = ("InvalidValue", f"{v.label}: {why}"[:512]) if why else None
        if problem:
            return "Rejected", {"reasonCode": problem[0], "additionalInfo": problem[1][:512]}, None
        return ("RebootRequired" if v.reboot_required else "Accepted"), None, (ck, v, attr, v.normalized(value))

    def set_variables(self, set_variable_data: list[dict], source: str = "CSMS") -> list[dict]:
        """SetVariablesRequest.setVariableData -> SetVariablesResponse.setVariableResult. Every
        element is checked before any is applied; the accepted ones are then stored in one atomic
        write, and subscribers are told."""
        checked = [self._check_set(item, source) for item in set_variable_data]
        changes = [c for _, _, c in checked if c is not None]
        if changes:
            with self.store.atomic():
                for ck, v, attr, text in changes:
                    self._write((ck, v.key, attr), v, text)
            for ck, v, attr, text in changes:
                self._remember((ck, v.key, attr), v, text)
                shown = "(write-only value)" if v.secret else repr(text[:100])
                where = "" if ck[2] is None else f" (EVSE {ck[2]}" + ("" if ck[3] is None else f" connector {ck[3]}") + ")"
                self.log.info("device model: %s%s %s set to %s by %s", v.label, where, attr, shown, source)
        results = []
        for item, (status, info, _) in zip(set_variable_data, checked, strict=True):
            r: dict[str, Any] = {"attributeType": item.get("attributeType", "Actual"), "attributeStatus": status,
                                 "component": item.get("component"), "variable": item.get("variable")}
            if info:
                r["attributeStatusInfo"] = info
            results.append(r)
        self._notify([(ck, v, attr) for ck, v, attr, _ in changes])
        for ck, v, attr, text in changes:
            self._watched(ck, v, attr, text)
        return results

    def stored_key(self, item: Mapping[str, Any]) -> str | None:
        """The store key (namespace ``dm201``) of the value a Get/SetVariableData element names,
        or None if the station has no such variable and attribute: for bookkeeping per value, like
        the runtime's ``--ocpp-config`` record of who set what (``store.updated_at(NS, key)``)."""
        found = self._resolve(item.get("component") or {}, item.get("variable") or {})
        attr = item.get("attributeType", "Actual")
        if isinstance(found, str) or found[1].mutability(attr) is None:
            return None
        return self._store_key(found[0], found[1].key, attr)

    def apply_config_file(self, set_variable_data: list[dict]) -> list[str]:
        """``--ocpp-config``: a list shaped like SetVariablesRequest.setVariableData. The valid
        entries are applied (a read-only variable may only restate its value); returns one
        problem line per entry that was not."""
        if not isinstance(set_variable_data, list):
            return ["the 2.0.1 --ocpp-config file must be a JSON list of setVariableData objects"]
        problems, good = [], []
        for n, item in enumerate(set_variable_data, 1):
            if not (isinstance(item, dict) and isinstance(item.get("component"), dict)
                    and isinstance(item.get("variable"), dict) and isinstance(item.get("attributeValue"), str)):
                problems.append(f"entry {n}: needs component, variable and a string attributeValue")
                continue
            good.append((n, item))
        results = self.set_variables([item for _, item in good], source="config file")
        for (n, item), r in zip(good, results, strict=True):
            if r["attributeStatus"] not in ("Accepted", "RebootRequired"):
                comp, var = item["component"], item["variable"]
                name = f"{comp.get('name')}.{var.get('name')}" + (f"[{var['instance']}]" if var.get("instance") else "")
                why = r.get("attributeStatusInfo", {}).get("additionalInfo", r["attributeStatus"])
                problems.append(f"entry {n} ({name}): {r['attributeStatus']}: {why}")
        return problems

    # -- reports --------------------------------------------------------------------------------
    def report_data(self, ck: ComponentKey, v: Variable) -> dict[str, Any]:
        """ReportDataType of one variable of one component instance (no WriteOnly value)."""
        size = self._limit("ReportingValueSize", REPORTING_VALUE_SIZE)
        attrs = []
        for attr, mut in v.attributes:
            a: dict[str, Any] = {"type": attr, "mutability": mut, "persistent": v.persistent, "constant": v.constant}
            if mut != WO:
                value = self._raw(ck, v, attr)
                a["value"] = ("" if value is None else value)[:size]
            attrs.append(a)
        var: dict[str, Any] = {"name": v.name}
        if v.instance:
            var["instance"] = v.instance
        return {"component": self._component_dict(ck), "variable": var, "variableAttribute": attrs,
                "variableCharacteristics": v.characteristics()}

    def _all(self) -> Iterator[tuple[ComponentKey, Variable]]:
        for ck in self.component_keys():
            for v in self.defs.by_component[ck[0].lower()]:
                yield ck, v

    def base_report(self, report_base: str) -> list[dict] | None:
        """GetBaseReport's reportData: FullInventory (everything), ConfigurationInventory (the
        variables the CSMS may set), SummaryInventory (availability and problem states); None
        for a report base this station does not support."""
        if report_base == "FullInventory":
            return [self.report_data(ck, v) for ck, v in self._all()]
        if report_base == "ConfigurationInventory":
            return [self.report_data(ck, v) for ck, v in self._all() if v.writable]
        if report_base == "SummaryInventory":
            return [self.report_data(ck, v) for ck, v in self._all() if v.name in SUMMARY_VARIABLES]
        return None

    def _meets(self, ck: ComponentKey, criteria: list[str]) -> bool:
        """The component has one of the criteria variables (Active, Available, Enabled, Problem)
        with Actual true."""
        for name in criteria:
            v = self.defs.index.get((ck[0].lower(), name.lower(), None))
            if v is not None and v.data_type == "boolean" and self._raw(ck, v, "Actual") == "true":
                return True
        return False

    def _selected(self, cv: Mapping[str, Any], ck: ComponentKey, v: Variable) -> bool:
        """A ComponentVariableType filter selects this variable of this component instance:
        the component name must match; its evse (id, connectorId) and instance, the variable and
        its instance narrow the selection only when given."""
        comp = cv.get("component") or {}
        if str(comp.get("name", "")).lower() != ck[0].lower():
            return False
        if comp.get("instance") and str(comp["instance"]).lower() != (ck[1] or "").lower():
            return False
        evse = comp.get("evse")
        if isinstance(evse, Mapping):
            if evse.get("id") != ck[2]:
                return False
            if evse.get("connectorId") is not None and evse.get("connectorId") != ck[3]:
                return False
        var = cv.get("variable")
        if isinstance(var, Mapping):
            if str(var.get("name", "")).lower() != v.name.lower():
                return False
            if var.get("instance") and str(var["instance"]).lower() != (v.instance or "").lower():
                return False
        return True

    def custom_report(self, component_criteria: list[str] | None,
                      component_variable: list[dict] | None) -> list[dict]:
        """GetReport's reportData: the variables the componentVariable filters select (all when
        none given) of the components meeting one of the componentCriteria (any when none given)."""
        out = []
        meets: dict[ComponentKey, bool] = {}
        for ck, v in self._all():
            if component_variable and not any(self._selected(cv, ck, v) for cv in component_variable):
                continue
            if component_criteria:
                if ck not in meets:
                    meets[ck] = self._meets(ck, component_criteria)
                if not meets[ck]:
                    continue
            out.append(self.report_data(ck, v))
        return out


def report_pages(report_data: list[dict], items_per_message: int,
                 bytes_per_message: int | None = None) -> list[list[dict]]:
    """Split reportData into NotifyReport parts of at most ``items_per_message`` entries and,
    if given, about ``bytes_per_message`` bytes of JSON (a part always holds at least one)."""
    items = max(1, int(items_per_message))
    pages: list[list[dict]] = []
    page: list[dict] = []
    size = 0
    envelope = 200  # [2,"id","NotifyReport",{"requestId":..,"generatedAt":..,"seqNo":..,"tbc":..,"reportData":[]}]
    for entry in report_data:
        n = len(json.dumps(entry, separators=(",", ":"))) + 1
        if page and (len(page) >= items or (bytes_per_message and envelope + size + n > bytes_per_message)):
            pages.append(page)
            page, size = [], 0
        page.append(entry)
        size += n
    if page:
        pages.append(page)
    return pages


# -- the field engineer's table (docs/device-model.md) -----------------------------------------

def markdown(defs: Definitions | None = None) -> str:
    """docs/device-model.md: every component and variable, one table per component."""
    d = defs or definitions()
    out = [
        "# OCPP 2.0.1 device model",
        "",
        "Every component and variable this station offers over OCPP 2.0.1 (GetVariables, SetVariables,",
        "GetBaseReport, GetReport, `--ocpp-config`). Generated by",
        "`python -m station.ocpp201.device_model --markdown > docs/device-model.md`; a test checks",
        "it is current.",
        "",
        "- Scope: `station` one instance; `evse` one per EVSE (`evse: {id}`); `connector` one per",
        "  connector (`evse: {id, connectorId}`).",
        "- Attributes: type and mutability (RO ReadOnly, RW ReadWrite, WO WriteOnly: never reported).",
        "- Required: OCPP 2.0.1 Part 2 marks it required (a FullInventory lists it).",
        "- Default: the value until set; `identity: x` is taken from the station's identity.",
        "- Stored values differ from the default; volatile values are the station's own, in memory.",
        "",
    ]
    short = {"ReadOnly": "RO", "ReadWrite": "RW", "WriteOnly": "WO"}
    for lname, (cname, scope) in d.components.items():
        out += [f"## {cname} ({scope})", "",
                "| Variable | Attributes | Type | Unit | Limits / values | Default | Notes |",
                "|---|---|---|---|---|---|---|"]
        for v in d.by_component[lname]:
            name = v.name + (f"[{v.instance}]" if v.instance else "")
            attrs = ", ".join(f"{a} {short[m]}" for a, m in v.attributes)
            limits = []
            if v.min_limit is not None or v.max_limit is not None:
                lo = "" if v.min_limit is None else f"{v.min_limit:g}"
                hi = "" if v.max_limit is None else f"{v.max_limit:g}"
                limits.append(f"{lo}..{hi}" + (" chars" if v.data_type == "string" else ""))
            if v.values_list is not None:
                limits.append(", ".join(v.values_list))
            default = f"identity: {v.default_from}" if v.default_from else (
                "(none)" if v.default is None else f"`{v.default}`" if v.default else "(empty)")
            notes = [n for n, on in (("required", v.required), ("volatile", v.volatile),
                                     ("reboot required", v.reboot_required), ("secret", v.secret)) if on]
            if v.description:
                notes.append(v.description)
            out.append(f"| {name} | {attrs} | {v.data_type} | {v.unit or ''} | {'; '.join(limits)} | "
                       f"{default} | {'; '.join(notes)} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        print("usage: python -m station.ocpp201.device_model --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
