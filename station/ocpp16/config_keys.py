"""OCPP 1.6 configuration keys: definitions, accessibility, validation and persistence.

Values are kept as strings, as OCPP 1.6 carries them, in the store (namespace ``ocpp16``), so they
survive restarts. ``ChangeConfiguration`` answers Accepted, Rejected (read-only or invalid value),
RebootRequired or NotSupported (unknown key).

Key names are CiString50Type: compared case-insensitively (``ConnectionTimeout`` finds
ConnectionTimeOut); answers always name a key as this station defines it.

Every value has a type and a sane range (``KEY_RANGES``): a value out of range is Rejected and
never stored, so no CSMS can configure a timer the event loop cannot arm (``1`` followed by 400
zeros) or that silently never fires. A value already stored that no longer passes its check (an
older release stored it) does not stop a start: the key's default is used and the key and the
problem are logged (``load_problems`` keeps them).

Read-only keys describe this station as built and configured, never an old store: the connector
count, the list lengths, and SecurityProfile, which is the station config's ``security_profile``
(the one source of truth: it is validated with ``csms_url`` and is what the link really uses).
``--ocpp-config`` cannot set a read-only key to another value.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from station.core.metering import invalid_measurands, parse_measurands
from station.store import Store

NS = "ocpp16"


def _bool(v: str) -> bool:
    return v.strip().lower() in ("true", "1")


def _is_bool(v: str) -> str | None:
    return None if v.strip().lower() in ("true", "false") else "must be true or false"


_DIGITS = re.compile(r"-?[0-9]+")


def _uint(low: int, high: int) -> Callable[[str], str | None]:
    """A whole number (ASCII digits only: no blanks, "+", underscores or other scripts' digits)
    in [low, high]; a number too long to be in range is not converted at all."""

    def check(v: str) -> str | None:
        if not _DIGITS.fullmatch(v):
            return "must be a whole number"
        if v.startswith("-"):
            return "must be 0 or more" if low == 0 else f"must be {low} to {high}"
        if len(v.lstrip("0")) > len(str(high)) or not low <= int(v) <= high:
            return f"must be {low} to {high}"
        return None

    return check


# (low, high) of every whole-number key. Seconds unless said otherwise; 0 turns the timer off
# where OCPP 1.6 gives 0 that meaning (intervals), else it is the smallest allowed value.
DAY = 86_400
KEY_RANGES: dict[str, tuple[int, int]] = {
    "BlinkRepeat": (0, 100),
    "ClockAlignedDataInterval": (0, DAY),
    "ConnectionTimeOut": (0, 3_600),
    "HeartbeatInterval": (0, DAY),
    "LightIntensity": (0, 100),  # percent
    "MaxEnergyOnInvalidId": (0, 1_000_000_000),  # Wh
    "MeterValueSampleInterval": (0, DAY),
    "MinimumStatusDuration": (0, 3_600),
    "ResetRetries": (0, 100),
    "TransactionMessageAttempts": (0, 100),
    "TransactionMessageRetryInterval": (0, 3_600),
    "WebSocketPingInterval": (0, 3_600),
}


def _measurands(max_len: int) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        bad = invalid_measurands(v)
        if bad:
            return f"unsupported measurand(s): {', '.join(bad)}"
        if len(parse_measurands(v)) > max_len:
            return f"at most {max_len} measurands"
        return None

    return check


def _phase_rotation(v: str) -> str | None:
    if len(v) > 500:
        return "at most 500 characters"
    for item in (x.strip() for x in v.split(",") if x.strip()):
        conn, _, rot = item.partition(".")
        if not conn.isdigit() or rot not in ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR"):
            return f"bad entry {item!r}"
    return None


MAX_MEASURANDS = 8
# entries of the Local Authorization List, and of one SendLocalList (1,001 entries still fit in a frame)
LOCAL_LIST_MAX = 1000


@dataclass(frozen=True)
class KeyDef:
    name: str
    default: str
    readonly: bool = False
    check: Callable[[str], str | None] | None = None
    reboot: bool = False
    secret: bool = False  # write-only: never reported by GetConfiguration


def key_definitions(connectors: int, security_profile: int = 0) -> list[KeyDef]:
    m = _measurands(MAX_MEASURANDS)
    r = {name: _uint(*bounds) for name, bounds in KEY_RANGES.items()}
    return [
        KeyDef("AllowOfflineTxForUnknownId", "false", check=_is_bool),
        KeyDef("AuthorizationCacheEnabled", "true", check=_is_bool),
        KeyDef("AuthorizeRemoteTxRequests", "true", check=_is_bool),
        KeyDef("BlinkRepeat", "3", check=r["BlinkRepeat"]),
        # Smart Charging (station/charging.py): what SetChargingProfile accepts
        KeyDef("ChargeProfileMaxStackLevel", "10", readonly=True),
        KeyDef("ChargingScheduleAllowedChargingRateUnit", "Current,Power", readonly=True),
        KeyDef("ChargingScheduleMaxPeriods", "48", readonly=True),
        KeyDef("ClockAlignedDataInterval", "0", check=r["ClockAlignedDataInterval"]),
        KeyDef("ConnectionTimeOut", "60", check=r["ConnectionTimeOut"]),
        KeyDef("ConnectorPhaseRotation", ",".join(f"{c}.RST" for c in range(connectors + 1)), check=_phase_rotation),
        KeyDef("ConnectorPhaseRotationMaxLength", str(connectors + 1), readonly=True),
        KeyDef("GetConfigurationMaxKeys", "50", readonly=True),
        KeyDef("HeartbeatInterval", "300", check=r["HeartbeatInterval"]),
        KeyDef("LightIntensity", "50", check=r["LightIntensity"]),
        # Local Auth List Management (station/local_list.py); false: the station answers as one without a list
        KeyDef("LocalAuthListEnabled", "true", check=_is_bool),
        KeyDef("LocalAuthListMaxLength", str(LOCAL_LIST_MAX), readonly=True),
        KeyDef("LocalAuthorizeOffline", "true", check=_is_bool),
        KeyDef("LocalPreAuthorize", "false", check=_is_bool),
        KeyDef("MaxEnergyOnInvalidId", "0", check=r["MaxEnergyOnInvalidId"]),
        KeyDef("MaxChargingProfilesInstalled", "20", readonly=True),
        KeyDef("MeterValuesAlignedData", "Energy.Active.Import.Register", check=m),
        KeyDef("MeterValuesAlignedDataMaxLength", str(MAX_MEASURANDS), readonly=True),
        KeyDef("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import", check=m),
        KeyDef("MeterValuesSampledDataMaxLength", str(MAX_MEASURANDS), readonly=True),
        KeyDef("MeterValueSampleInterval", "60", check=r["MeterValueSampleInterval"]),
        KeyDef("MinimumStatusDuration", "0", check=r["MinimumStatusDuration"]),
        KeyDef("NumberOfConnectors", str(connectors), readonly=True),
        KeyDef("ResetRetries", "1", check=r["ResetRetries"]),
        # Reservation profile: ReserveNow on connector 0 (any connector) is supported
        KeyDef("ReserveConnectorZeroSupported", "true", readonly=True),
        KeyDef("SendLocalListMaxLength", str(LOCAL_LIST_MAX), readonly=True),
        KeyDef("StopTransactionOnEVSideDisconnect", "true", check=_is_bool),
        KeyDef("StopTransactionOnInvalidId", "true", check=_is_bool),
        KeyDef("StopTxnAlignedData", "", check=m),
        KeyDef("StopTxnAlignedDataMaxLength", str(MAX_MEASURANDS), readonly=True),
        KeyDef("StopTxnSampledData", "", check=m),
        KeyDef("StopTxnSampledDataMaxLength", str(MAX_MEASURANDS), readonly=True),
        KeyDef("SupportedFeatureProfiles", "Core,RemoteTrigger,LocalAuthListManagement,Reservation,FirmwareManagement,SmartCharging", readonly=True),
        KeyDef("SupportedFeatureProfilesMaxLength", "6", readonly=True),
        KeyDef("TransactionMessageAttempts", "3", check=r["TransactionMessageAttempts"]),
        KeyDef("TransactionMessageRetryInterval", "60", check=r["TransactionMessageRetryInterval"]),
        KeyDef("UnlockConnectorOnEVSideDisconnect", "true", check=_is_bool),
        KeyDef("WebSocketPingInterval", "60", check=r["WebSocketPingInterval"]),
        # Security whitepaper: the basic-auth password; write-only
        KeyDef("AuthorizationKey", "", check=lambda v: None if 16 <= len(v) <= 40 else "must be 16-40 characters", secret=True),
        # the station config's security_profile, as the link uses it; ChangeConfiguration goes
        # through the adapter's writer (security whitepaper: only upward, see handlers/security.py)
        KeyDef("SecurityProfile", str(security_profile), readonly=True),
        # security whitepaper edition 3
        KeyDef("CpoName", "", check=lambda v: None if len(v) <= 64 else "at most 64 characters"),
        KeyDef("CertificateStoreMaxLength", "20", readonly=True),
        KeyDef("CertificateSignedMaxChainSize", "10000", readonly=True),
        KeyDef("AdditionalRootCertificateCheck", "false", readonly=True),
    ]


@functools.cache
def shared_definitions(connectors: int, security_profile: int = 0
                       ) -> tuple[Mapping[str, KeyDef], Mapping[str, str], Mapping[str, str]]:
    """The key definitions by name, the names by lower-case name and the default values, built
    once per (connectors, security profile) and shared, read-only, by every station of the
    process (a fleet)."""
    defs = {k.name: k for k in key_definitions(connectors, security_profile)}
    return (MappingProxyType(defs), MappingProxyType({name.lower(): name for name in defs}),
            MappingProxyType({k.name: k.default for k in defs.values()}))


class ConfigurationKeys:
    def __init__(self, store: Store, connectors: int, security_profile: int = 0,
                 log: logging.Logger | None = None) -> None:
        self.store = store
        self.log = log or logging.getLogger(__name__)
        self.defs, self._names, defaults = shared_definitions(connectors, security_profile)
        # the values in use: this station's own (set, stored) over the shared defaults
        self.values: ChainMap[str, str] = ChainMap({}, defaults)  # type: ignore[arg-type]
        self.load_problems: list[str] = []  # stored values not used (out of range, wrong type)
        # keys ChangeConfiguration sets through their owner, not here: name -> change(value) -> (status, why)
        self.writers: dict[str, Callable[[str], tuple[str, str]]] = {}
        for key, value in store.items(NS).items():
            kd = self.defs.get(key)
            if kd is None:
                continue
            value = str(value)
            problem = None if kd.readonly or kd.check is None else kd.check(value)
            if problem:
                # a value an older release let in: never crash a start over it, use the default
                self.load_problems.append(f"{key}: {problem}")
                shown = "(secret)" if kd.secret else repr(value[:40]) + ("..." if len(value) > 40 else "")
                self.log.error("configuration key %s: stored value %s not used (%s); using the default %r",
                               key, shown, problem, kd.default)
                continue
            self.values[key] = value
        # read-only values describe this build and its config, never an old store
        for k in self.defs.values():
            if k.readonly:
                self.values.maps[0].pop(k.name, None)

    def canonical(self, key: str) -> str | None:
        """The key's name as defined here, found case-insensitively (CiString); None if unknown."""
        return self._names.get(key.lower())

    def get(self, key: str) -> str:
        return self.values[key]

    def bool(self, key: str) -> bool:
        return _bool(self.values[key])

    def int(self, key: str) -> int:
        """The key's value as a whole number within its range (the default if it is not one)."""
        kd = self.defs[key]
        value = self.values[key]
        if kd.check is not None and kd.check(value) is not None:
            value = kd.default
        try:
            return int(value)
        except ValueError:
            return int(kd.default or 0)

    def set_initial(self, key: str, value: str) -> str | None:
        """Set a value from --ocpp-config on first start. Returns a problem or None.

        A read-only key describes the station: it may be given only with the value it has."""
        name = self.canonical(key)
        if name is None:
            return f"{key}: not a configuration key of this station"
        kd = self.defs[name]
        if kd.readonly:
            if value == self.values[name]:
                return None
            if name == "SecurityProfile":
                return (f"SecurityProfile: set by station.security_profile in the station config "
                        f"({self.values[name]}), not by --ocpp-config ({value}); ignored")
            return f"{name}: read-only, it is {self.values[name]} on this station; {value!r} ignored"
        problem = kd.check(value) if kd.check else None
        if problem:
            return f"{name}: {problem}"
        self.values[name] = value
        self.store.put(NS, name, value)
        return None

    def change(self, key: str, value: str) -> tuple[str, str]:
        """ChangeConfiguration: returns (status, explanation). ``key`` is found case-insensitively."""
        name = self.canonical(key)
        if name is None:
            return "NotSupported", f"unknown key {key}"
        kd = self.defs[name]
        if name in self.writers:
            return self.writers[name](value)
        if kd.readonly:
            return "Rejected", f"{name} is read-only"
        problem = kd.check(value) if kd.check else None
        if problem:
            return "Rejected", f"{name}: {problem}"
        self.values[name] = value
        self.store.put(NS, name, value)
        return ("RebootRequired" if kd.reboot else "Accepted"), ""

    def report(self, keys: list[str] | None) -> tuple[list[dict], list[str]]:
        """GetConfiguration: (configurationKey entries under their defined names, unknownKey as asked)."""
        asked = keys if keys else [k for k, d in self.defs.items() if not d.secret]
        found, unknown = [], []
        for key in asked:
            name = self.canonical(key)
            if name is None or self.defs[name].secret:
                unknown.append(key)
                continue
            readonly = self.defs[name].readonly and name not in self.writers
            found.append({"key": name, "readonly": readonly, "value": self.values[name][:500]})
        return found, unknown
