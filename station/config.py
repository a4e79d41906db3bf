"""The station's one local config file (TOML): load, validate, and explain what is wrong.

Every problem is reported as ``<key path>: <what is wrong>`` so a field engineer can fix the file
without reading code. Command-line flags override the file (see :mod:`station.cli`).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hal.board import BUILDERS, check_device
from hal.board import KEYS as DEVICE_KEYS
from hal.section import read_section
from hal.tamper import KEYS as TAMPER_KEYS

OCPP_VERSIONS = ("1.6", "2.0.1")
OCPP_IMPLEMENTED = ("1.6", "2.0.1")
DEFAULT_STATE_ROOT = "state"  # the default state directory is state/<station id>
API_TOKEN_ENV = "STATION_API_TOKEN"
API_TOKEN_MIN = 16


class ConfigError(Exception):
    """One or more problems in a config; ``problems`` lists them as 'key: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ConnectorConfig:
    """One of several connectors of an EVSE (``[[evse.connector]]``): its own pilot and lock."""

    id: int
    connector_type: str = "cType2"
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # pilot, lock


@dataclass
class EvseConfig:
    id: int
    max_current: float = 32.0
    phases: int = 3
    fixed_cable: bool = False
    connector_type: str = "cType2"
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: list[ConnectorConfig] = field(default_factory=list)  # empty: one connector, the EVSE's pilot and lock


CONNECTOR_DEVICES = ("pilot", "lock")  # the devices a [[evse.connector]] section may have
CONNECTOR_KEYS: dict[str, type | tuple[type, ...]] = {"id": int, "connector_type": str}


def connector_numbers(evses: list[EvseConfig]) -> dict[tuple[int, int], int]:
    """(EVSE id, connector within it) -> the station's connector number (OCPP 1.6 connectorId).
    With one connector per EVSE the connector is numbered like its EVSE (as always); with several,
    all connectors are numbered from 1 in the order of the file."""
    if all(len(e.connectors) <= 1 for e in evses):
        return {(e.id, 1): e.id for e in evses}
    out: dict[tuple[int, int], int] = {}
    for e in evses:
        for n in range(1, max(1, len(e.connectors)) + 1):
            out[(e.id, n)] = len(out) + 1
    return out


@dataclass
class StationConfig:
    id: str = "CP-001"
    ocpp: str = "1.6"
    csms_url: str = "ws://127.0.0.1:9000/ocpp"
    state_dir: str | None = None  # None: state/<id> (each station its own directory)
    # the one source of the security profile: the link uses it, the read-only 1.6 key
    # SecurityProfile reports it, --ocpp-config cannot override it (it is checked with csms_url here)
    security_profile: int = 0
    ca_file: str | None = None  # wss://: PEM CA certificate(s) the CSMS certificate must chain to (else the system's)
    # the wss:// URL once a CSMS raises SecurityProfile from 0/1 to 2/3 (default: csms_url with wss://)
    csms_url_tls: str | None = None
    vendor: str = "OpenStation"
    model: str = "PyStation"
    serial: str = ""
    firmware_version: str = "0.1.0"
    api: str | None = None
    api_token: str | None = None
    gpio: str = "sim"
    # [hardware] tamper keys (hal/tamper.py), defaults filled in; tamper -1: no tamper switch
    tamper: dict[str, Any] = field(default_factory=lambda: read_section({}, TAMPER_KEYS, "hardware")[0])
    simulated: bool = False
    evses: list[EvseConfig] = field(default_factory=lambda: [EvseConfig(1)])
    ocpp_config_file: str | None = None
    source: str = "<defaults>"

    def url_for_station(self) -> str:
        """The CSMS URL with the station id appended to the path, as OCPP-J requires."""
        return self.csms_url.rstrip("/") + "/" + self.id

    def state_path(self) -> Path:
        """The station's state directory: ``state_dir`` as given, else ``state/<id>``."""
        return Path(self.state_dir) if self.state_dir else Path(DEFAULT_STATE_ROOT) / self.id

    def api_address(self) -> tuple[str, int]:
        """``api`` as (host, port); an IPv6 host loses its brackets."""
        assert self.api is not None
        host, _, port = self.api.rpartition(":")
        return host.strip("[]"), int(port)


STATION_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "ocpp": str,
    "csms_url": str,
    "state_dir": str,
    "security_profile": int,
    "ca_file": str,
    "csms_url_tls": str,
    "vendor": str,
    "model": str,
    "serial": str,
    "firmware_version": str,
    "api": str,
    "api_token": str,
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
    elif s.ocpp not in OCPP_IMPLEMENTED:
        problems.append(f"station.ocpp: OCPP {s.ocpp} is not implemented yet (only {', '.join(OCPP_IMPLEMENTED)})")
    url_problem = csms_url_problem(s.csms_url)
    url = urlparse("") if url_problem else urlparse(s.csms_url)
    if url_problem:
        problems.append(f"station.csms_url: {url_problem}")
    elif s.id and url.path.rstrip("/").rpartition("/")[2] == s.id:
        problems.append(
            f"station.csms_url: already ends with the station id {s.id!r}; leave it out, the station "
            f"appends it (it would connect to {s.url_for_station()})"
        )
    if s.security_profile not in (0, 1, 2, 3):
        problems.append(f"station.security_profile: must be 0, 1, 2 or 3, got {s.security_profile!r}")
    elif url_problem:
        pass  # the profile's scheme cannot be checked against a URL that is not one
    elif s.security_profile in (2, 3) and url.scheme != "wss":
        problems.append(f"station.security_profile: profile {s.security_profile} needs a wss:// csms_url")
    elif s.security_profile in (0, 1) and url.scheme == "wss":
        problems.append(f"station.security_profile: profile {s.security_profile} uses ws://, but csms_url is wss://")
    if s.csms_url_tls:  # "" (as in config/sim.toml): not set
        tls_problem = csms_url_problem(s.csms_url_tls)
        if tls_problem:
            problems.append(f"station.csms_url_tls: {tls_problem}")
        elif urlparse(s.csms_url_tls).scheme != "wss":
            problems.append("station.csms_url_tls: must be a wss:// URL")
    # profile 3: the client certificate is the one in the state's certificate store (SignCertificate,
    # or provisioned with station.security.CertificateStore.provision); see ocpp16/handlers/security.py
    if (not s.id or len(s.id) > 48 or any(c in s.id for c in "/?#: \\") or s.id in (".", "..")
            or any(c.isspace() or not c.isprintable() for c in s.id)):
        problems.append(f"station.id: must be 1-48 characters without / ? # : \\ or spaces, got {s.id!r}")
    if s.api is not None:
        host, _, port = s.api.rpartition(":")
        if (not host or not port.isdigit() or not 0 <= int(port) < 65536
                or host.startswith("[") != host.endswith("]") or not host.strip("[]")):
            problems.append(f"station.api: must be HOST:PORT (an IPv6 address in brackets: [::1]:8080), got {s.api!r}")
    if s.api_token and len(s.api_token) < API_TOKEN_MIN:
        problems.append(f"station.api_token: must be at least {API_TOKEN_MIN} characters (a long random string)")
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
        for k, c in enumerate(e.connectors):
            if c.id != k + 1:
                problems.append(f"{p}.connector[{k}].id: connectors count from 1 in order, expected {k + 1}, got {c.id}")
            for device, section in c.devices.items():
                problems.extend(check_device(device, section, f"{p}.connector[{k}].{device}"))
    if not s.evses:
        problems.append("evse: at least one [[evse]] section is needed")
    _check_shared_resources(s, problems)


def csms_url_problem(text: str) -> str | None:
    """What is wrong with a CSMS URL (None: nothing): a ws:// or wss:// URL with a host, a port
    in 1-65535 if one is given, no ?query or #fragment (the station id is appended to the path)."""
    try:
        url = urlparse(text)
        port = url.port  # raises for a port out of range or not a number
    except ValueError as e:  # "Invalid IPv6 URL" (ws://[::1/ocpp), "Port out of range 0-65535"
        why = str(e)
        if "Port" in why or "port" in why:
            port_text = text.split("://", 1)[-1].split("/", 1)[0].rpartition(":")[2]
            return f"the port must be a number from 1 to 65535, got {port_text or 'nothing'} in {text!r}"
        return f"not a valid URL ({why}), got {text!r}; an IPv6 address is written in brackets: ws://[::1]:9000/ocpp"
    if url.scheme not in ("ws", "wss") or not url.hostname:
        return f"must be a ws:// or wss:// URL with a host, got {text!r}"
    if port == 0:
        return f"the port must be a number from 1 to 65535, got 0 in {text!r}"
    if url.query or url.fragment or text.rstrip().endswith(("?", "#")):
        return f"must not have a ?query or #fragment (the station id is appended to the path), got {text!r}"
    if any(c.isspace() for c in text):
        return f"must not contain spaces, got {text!r}"
    return None


def is_loopback(host: str) -> bool:
    """Whether an API host name or address is this machine only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_problems(s: StationConfig) -> list[str]:
    """The local API bound beyond loopback needs a token (``station.api_token`` or the
    ``STATION_API_TOKEN`` environment variable, merged into ``s.api_token`` by the caller)."""
    if s.api is None or ":" not in s.api:
        return []
    host = s.api.rpartition(":")[0]
    if host and not is_loopback(host) and not s.api_token:
        return [
            f"station.api: {host} is not a loopback address: anyone on that network could drive the "
            f"charger; set station.api_token (or {API_TOKEN_ENV}) to a long random string, or use 127.0.0.1"
        ]
    return []


# A resource claim: (what, chip/bus/port, line/address/unit...) -> the key path that claims it.
# Outputs may never share; on simulated GPIO an input may read an output's line (a looped-back
# auxiliary contact), on real GPIO every line has one user.
INPUT_PIN_KEYS = ("feedback",)


def _claims(device: str, kind: str, section: dict[str, Any]) -> list[tuple[str, tuple, bool]]:
    """(key, resource, is_output) for every pin, PWM channel, ADC input, bus address and port a
    device section uses."""
    keys = DEVICE_KEYS.get((device, kind))
    if not keys:
        return []
    out: list[tuple[str, tuple, bool]] = []

    def num(key: str, default: Any = None) -> Any:
        v = section.get(key, default)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    for key in keys:
        line = num(key)
        if f"{key}_chip" in keys and line is not None and line >= 0:
            out.append((key, ("gpio", section.get(f"{key}_chip", "gpiochip0"), line), key not in INPUT_PIN_KEYS))
    if device == "pilot":
        out.append(("pwm_channel", ("pwm", num("pwm_chip", 0), num("pwm_channel", 0)), True))
        adc = ("adc", num("i2c_bus", 1), num("adc_address", 0x48))
        out.append(("channel_high", (*adc, num("channel_high", 0)), False))
        low = num("channel_low", -1)
        if low is not None and low >= 0:
            out.append(("channel_low", (*adc, low), False))
    elif device == "meter" and kind == "modbus":
        unit = num("unit", 1)
        if section.get("transport") == "rtu" and isinstance(section.get("port"), str):
            out.append(("unit", ("modbus-rtu", section["port"], unit), True))
        elif section.get("transport") == "tcp" and isinstance(section.get("host"), str):
            out.append(("unit", ("modbus-tcp", f"{section['host']}:{num('tcp_port', 502)}", unit), True))
    elif device == "meter" and kind == "ade7953":
        out.append(("channel", ("ade7953", num("bus", 1), num("address", 0x38), section.get("channel", "a")), True))
    elif device == "reader" and kind == "pn532" and isinstance(section.get("port"), str):
        out.append(("port", ("serial", section["port"]), True))
    return out


def _describe(what: tuple) -> str:
    kind = what[0]
    if kind == "gpio":
        return f"{what[1]} line {what[2]}"
    if kind == "pwm":
        return f"PWM chip {what[1]} channel {what[2]}"
    if kind == "adc":
        return f"ADC input {what[3]} of I2C bus {what[1]} address {what[2]:#04x}"
    if kind in ("modbus-rtu", "modbus-tcp"):
        return f"Modbus unit {what[2]} on {what[1]}"
    if kind == "ade7953":
        return f"ADE7953 channel {what[3]} at I2C bus {what[1]} address {what[2]:#04x}"
    return f"serial port {what[1]}"


def _check_shared_resources(s: StationConfig, problems: list[str]) -> None:
    """One GPIO line, PWM channel, ADC input, meter address or reader port used twice: a wiring
    mistake (gpiod would say "busy", two meters would answer one request, or none would)."""
    used: dict[tuple, tuple[str, bool]] = {}
    line = s.tamper.get("tamper", -1)
    if isinstance(line, int) and line >= 0:  # the tamper switch's input, station-wide
        used[("gpio", s.tamper.get("tamper_chip", "gpiochip0"), line)] = ("hardware.tamper", False)
    for n, e in enumerate(s.evses):
        sections = [(f"evse[{n}].{device}", device, section) for device, section in e.devices.items()]
        sections += [(f"evse[{n}].connector[{k}].{device}", device, section)
                     for k, c in enumerate(e.connectors) for device, section in c.devices.items()]
        for where, device, section in sections:
            for key, what, output in _claims(device, section.get("kind", "sim"), section):
                path = f"{where}.{key}"
                other = used.get(what)
                if other is None:
                    used[what] = (path, output)
                    continue
                if what[0] == "gpio" and s.gpio == "sim" and not (output and other[1]):
                    continue  # simulated: an input may read back an output (or another input)
                problems.append(f"{path}: {_describe(what)} is already used by {other[0]}")


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
        tamper: dict[str, Any] = {}
        for key, value in hw.items():
            if key in TAMPER_KEYS:
                tamper[key] = value
            elif key != "gpio":
                problems.append(f"hardware.{key}: unknown key (known: gpio, {', '.join(TAMPER_KEYS)})")
            elif value not in ("sim", "gpiod", "rpigpio"):
                problems.append(f"hardware.gpio: must be sim, gpiod or rpigpio, got {value!r}")
            else:
                cfg.gpio = value
        cfg.tamper, tamper_problems = read_section(tamper, TAMPER_KEYS, "hardware")
        problems += tamper_problems
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
            vals = _check(raw, EVSE_KEYS, f"evse[{n}]", problems, allow=set(BUILDERS) | {"connector"})
            if "id" not in vals:
                vals["id"] = n + 1
            devices = {}
            for dev in BUILDERS:
                if dev in raw:
                    if not isinstance(raw[dev], dict):
                        problems.append(f"evse[{n}].{dev}: must be a table [evse.{dev}]")
                    else:
                        devices[dev] = dict(raw[dev])
            connectors = _parse_connectors(raw.get("connector", []), f"evse[{n}]", problems)
            cfg.evses.append(EvseConfig(**{k: v for k, v in vals.items()}, devices=devices, connectors=connectors))
    validate_station(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def _parse_connectors(raw: Any, prefix: str, problems: list[str]) -> list[ConnectorConfig]:
    """``[[evse.connector]]``: several connectors of one EVSE, each with its own pilot and lock."""
    if not isinstance(raw, list):
        problems.append(f"{prefix}.connector: must be an array of tables: write [[evse.connector]]")
        return []
    out: list[ConnectorConfig] = []
    for k, c in enumerate(raw):
        path = f"{prefix}.connector[{k}]"
        if not isinstance(c, dict):
            problems.append(f"{path}: must be a table: write [[evse.connector]] with its keys below it")
            continue
        vals = _check(c, CONNECTOR_KEYS, path, problems, allow=set(CONNECTOR_DEVICES))
        devices = {}
        for dev in CONNECTOR_DEVICES:
            if dev in c:
                if not isinstance(c[dev], dict):
                    problems.append(f"{path}.{dev}: must be a table [evse.connector.{dev}]")
                else:
                    devices[dev] = dict(c[dev])
        out.append(ConnectorConfig(id=vals.get("id", k + 1), connector_type=vals.get("connector_type", "cType2"),
                                   devices=devices))
    return out


MAX_CONFIG_BYTES = 1 << 20  # a station config is a few KiB; more is the wrong file (or /dev/zero)


def load(path: str | Path) -> StationConfig:
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the file ({e.strerror})"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB: not a station config file"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError([f"{path}: not valid UTF-8 (byte {raw[e.start]:#04x} in line {line}): "
                           "a TOML file must be saved as UTF-8"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid TOML: arrays or tables nested too deeply"]) from None
    return parse(data, source=str(path))
