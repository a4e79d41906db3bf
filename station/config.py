"""The station's one local config file (TOML): load, validate, and explain what is wrong.

Every problem is reported as ``<key path>: <what is wrong>`` so a field engineer can fix the file
without reading code. Command-line flags override the file (see :mod:`station.cli`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hal.board import BUILDERS, check_device
from hal.board import KEYS as DEVICE_KEYS

OCPP_VERSIONS = ("1.6", "2.0.1")


class ConfigError(Exception):
    """One or more problems in a config; ``problems`` lists them as 'key: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class EvseConfig:
    id: int
    max_current: float = 32.0
    phases: int = 3
    fixed_cable: bool = False
    connector_type: str = "cType2"
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StationConfig:
    id: str = "CP-001"
    ocpp: str = "1.6"
    csms_url: str = "ws://127.0.0.1:9000/ocpp"
    state_dir: str = "state"
    # the one source of the security profile: the link uses it, the read-only 1.6 key
    # SecurityProfile reports it, --ocpp-config cannot override it (it is checked with csms_url here)
    security_profile: int = 0
    vendor: str = "OpenStation"
    model: str = "PyStation"
    serial: str = ""
    firmware_version: str = "0.1.0"
    api: str | None = None
    gpio: str = "sim"
    simulated: bool = False
    evses: list[EvseConfig] = field(default_factory=lambda: [EvseConfig(1)])
    ocpp_config_file: str | None = None
    source: str = "<defaults>"

    def url_for_station(self) -> str:
        """The CSMS URL with the station id appended to the path, as OCPP-J requires."""
        return self.csms_url.rstrip("/") + "/" + self.id


STATION_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "ocpp": str,
    "csms_url": str,
    "state_dir": str,
    "security_profile": int,
    "vendor": str,
    "model": str,
    "serial": str,
    "firmware_version": str,
    "api": str,
    "simulated": bool,
}
EVSE_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": int,
    "max_current": (int, float),
    "phases": int,
    "fixed_cable": bool,
    "connector_type": str,
}


def _type_name(t: type | tuple[type, ...]) -> str:
    if t == (int, float):
        return "a number"
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return {"str": "a string", "int": "a whole number", "bool": "true or false"}.get(t.__name__, t.__name__)


def _check(section: dict, keys: dict, prefix: str, problems: list[str], allow: set[str] = frozenset()) -> dict:
    out: dict[str, Any] = {}
    for key, value in section.items():
        path = f"{prefix}.{key}"
        if key in allow:
            continue
        if key not in keys:
            problems.append(f"{path}: unknown key (known: {', '.join(sorted(keys) + sorted(allow))})")
            continue
        want = keys[key]
        if isinstance(value, bool) and want is not bool and bool not in (want if isinstance(want, tuple) else (want,)):
            problems.append(f"{path}: must be {_type_name(want)}, got {value!r}")
            continue
        if not isinstance(value, want):
            problems.append(f"{path}: must be {_type_name(want)}, got {value!r}")
            continue
        out[key] = value
    return out


def validate_station(s: StationConfig, problems: list[str]) -> None:
    if s.ocpp not in OCPP_VERSIONS:
        problems.append(f"station.ocpp: must be one of {', '.join(OCPP_VERSIONS)}, got {s.ocpp!r}")
    url = urlparse(s.csms_url)
    if url.scheme not in ("ws", "wss") or not url.hostname:
        problems.append(f"station.csms_url: must be a ws:// or wss:// URL with a host, got {s.csms_url!r}")
    if s.security_profile not in (0, 1, 2, 3):
        problems.append(f"station.security_profile: must be 0, 1, 2 or 3, got {s.security_profile!r}")
    elif s.security_profile in (2, 3) and url.scheme != "wss":
        problems.append(f"station.security_profile: profile {s.security_profile} needs a wss:// csms_url")
    elif s.security_profile in (0, 1) and url.scheme == "wss":
        problems.append(f"station.security_profile: profile {s.security_profile} uses ws://, but csms_url is wss://")
    if not s.id or len(s.id) > 48 or any(c in s.id for c in "/?#: "):
        problems.append(f"station.id: must be 1-48 characters without / ? # : or spaces, got {s.id!r}")
    if s.api is not None:
        host, _, port = s.api.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            problems.append(f"station.api: must be HOST:PORT, got {s.api!r}")
    seen: set[int] = set()
    for n, e in enumerate(s.evses):
        p = f"evse[{n}]"
        if e.id in seen or e.id < 1:
            problems.append(f"{p}.id: must be a unique number from 1, got {e.id}")
        seen.add(e.id)
        if not 6 <= e.max_current <= 80:
            problems.append(f"{p}.max_current: must be between 6 and 80 A, got {e.max_current}")
        if e.phases not in (1, 3):
            problems.append(f"{p}.phases: must be 1 or 3, got {e.phases}")
        for device, section in e.devices.items():
            problems.extend(check_device(device, section, f"{p}.{device}"))
    if not s.evses:
        problems.append("evse: at least one [[evse]] section is needed")
    if s.gpio != "sim":
        _check_shared_lines(s, problems)


def _check_shared_lines(s: StationConfig, problems: list[str]) -> None:
    """Two devices on one GPIO line or one PWM channel: a wiring mistake (gpiod would say "busy")."""
    used: dict[tuple, str] = {}
    for n, e in enumerate(s.evses):
        for device, section in e.devices.items():
            keys = DEVICE_KEYS.get((device, section.get("kind", "sim")))
            if not keys:
                continue
            claims = []
            for key in keys:
                line = section.get(key)
                if f"{key}_chip" in keys and isinstance(line, int) and not isinstance(line, bool) and line >= 0:
                    claims.append((key, ("gpio", section.get(f"{key}_chip", "gpiochip0"), line)))
            if device == "pilot":
                pwm = ("pwm", section.get("pwm_chip", 0), section.get("pwm_channel", 0))
                claims.append(("pwm_channel", pwm))
            for key, what in claims:
                path = f"evse[{n}].{device}.{key}"
                if what in used:
                    name = f"{what[1]} line {what[2]}" if what[0] == "gpio" else f"PWM chip {what[1]} channel {what[2]}"
                    problems.append(f"{path}: {name} is already used by {used[what]}")
                else:
                    used[what] = path


def parse(data: dict, source: str = "<config>") -> StationConfig:
    problems: list[str] = []
    for top in data:
        if top not in ("station", "hardware", "evse"):
            problems.append(f"{top}: unknown section (known: station, hardware, evse)")
    st = data.get("station", {})
    if not isinstance(st, dict):
        raise ConfigError(["station: must be a table [station]"])
    values = _check(st, STATION_KEYS, "station", problems)
    cfg = StationConfig(**values, source=source)
    hw = data.get("hardware", {})
    if not isinstance(hw, dict):
        problems.append("hardware: must be a table [hardware]")
    else:
        for key, value in hw.items():
            if key != "gpio":
                problems.append(f"hardware.{key}: unknown key (known: gpio)")
            elif value not in ("sim", "gpiod", "rpigpio"):
                problems.append(f"hardware.gpio: must be sim, gpiod or rpigpio, got {value!r}")
            else:
                cfg.gpio = value
    if "evse" in data:
        evses = data["evse"]
        if not isinstance(evses, list):
            problems.append("evse: must be an array of tables: write [[evse]]")
            evses = []
        cfg.evses = []
        for n, raw in enumerate(evses):
            if not isinstance(raw, dict):
                problems.append(f"evse[{n}]: must be a table: write [[evse]] with its keys below it")
                continue
            vals = _check(raw, EVSE_KEYS, f"evse[{n}]", problems, allow=set(BUILDERS))
            if "id" not in vals:
                vals["id"] = n + 1
            devices = {}
            for dev in BUILDERS:
                if dev in raw:
                    if not isinstance(raw[dev], dict):
                        problems.append(f"evse[{n}].{dev}: must be a table [evse.{dev}]")
                    else:
                        devices[dev] = dict(raw[dev])
            cfg.evses.append(EvseConfig(**{k: v for k, v in vals.items()}, devices=devices))
    validate_station(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def load(path: str | Path) -> StationConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the file ({e.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    return parse(data, source=str(path))
