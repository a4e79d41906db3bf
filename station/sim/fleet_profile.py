"""Fleet mode's profile (what the simulated drivers do, from TOML) and its station ids and shards.
See station/sim/fleet.py and docs/fleet.md."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

VERSIONS = ("1.6", "2.0.1")  # what --ocpp and [versions] may name
SHARDS_ENV = "FLEET_SHARDS"  # --shard auto: how many shards (else --shards)
INDEX_ENV = "JOB_COMPLETION_INDEX"  # --shard auto: which one (a Kubernetes Indexed Job)


class FleetError(Exception):
    """Something that keeps the fleet from starting; one line for the engineer."""



# -- the profile --------------------------------------------------------------------------------
@dataclass
class FleetProfile:
    """What the simulated drivers and the stations do (see docs/fleet.md for the TOML form)."""

    sessions_per_hour: float = 1.0  # per station: the pause between sessions is exponential
    session_minutes: tuple[float, float] = (10.0, 60.0)  # charging time, uniform
    plug_to_card_s: tuple[float, float] = (2.0, 10.0)
    unplug_after_s: tuple[float, float] = (5.0, 60.0)
    busy_at_start: float = 0.25  # share of stations whose first session starts right after boot
    ev_max_current: tuple[float, ...] = (16.0, 32.0)  # A; one picked per session
    ev_phases: tuple[int, ...] = (1, 3)
    cards: int = 1000
    card_prefix: str = "FLEETCARD"
    drops_per_hour: float = 0.0  # per station: the network drops the connection (TCP abort)
    versions: dict[str, float] = field(default_factory=lambda: {"1.6": 1.0})
    expected_requests: frozenset[str] | None = None  # None: any CSMS request is expected
    ocpp16_keys: dict[str, str] = field(default_factory=dict)  # configuration keys of every 1.6 station
    # device-model values of every 2.0.1 station, by their store key (checked like SetVariables)
    ocpp201_variables: dict[str, str] = field(default_factory=dict)
    seed: int = 1


_PROFILE_KEYS = {
    "seed": None,
    "sessions": {"per_hour", "minutes", "plug_to_card_s", "unplug_after_s", "busy_at_start"},
    "ev": {"max_current", "phases"},
    "cards": {"pool", "prefix"},
    "link": {"drops_per_hour"},
    "versions": None,
    "csms": {"expected_requests"},
    "ocpp16": None,
    "ocpp201": None,
}


def _pair(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
            or value[0] > value[1]):
        raise FleetError(f"{where}: must be [low, high] with 0 <= low <= high, or one number")
    return float(value[0]), float(value[1])


def _number(value: Any, where: str, low: float = 0.0, high: float = math.inf) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise FleetError(f"{where}: must be a number from {low:g} to {high:g}")
    return float(value)


def parse_profile(data: dict, source: str = "profile") -> FleetProfile:
    """A profile from parsed TOML; every problem is a FleetError naming the key."""
    p = FleetProfile()
    for key, value in data.items():
        if key not in _PROFILE_KEYS:
            raise FleetError(f"{source}: unknown key {key!r} (known: {', '.join(_PROFILE_KEYS)})")
        allowed = _PROFILE_KEYS[key]
        if allowed is not None:
            if not isinstance(value, dict):
                raise FleetError(f"{source}: [{key}] must be a table")
            unknown = set(value) - allowed
            if unknown:
                raise FleetError(f"{source}: [{key}] unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(allowed))})")
    if "seed" in data:
        if not isinstance(data["seed"], int):
            raise FleetError(f"{source}: seed must be a whole number")
        p.seed = data["seed"]
    s = data.get("sessions", {})
    if "per_hour" in s:
        p.sessions_per_hour = _number(s["per_hour"], "sessions.per_hour", 0, 3600)
    if "minutes" in s:
        p.session_minutes = _pair(s["minutes"], "sessions.minutes")
    if "plug_to_card_s" in s:
        p.plug_to_card_s = _pair(s["plug_to_card_s"], "sessions.plug_to_card_s")
    if "unplug_after_s" in s:
        p.unplug_after_s = _pair(s["unplug_after_s"], "sessions.unplug_after_s")
    if "busy_at_start" in s:
        p.busy_at_start = _number(s["busy_at_start"], "sessions.busy_at_start", 0, 1)
    ev = data.get("ev", {})
    if "max_current" in ev:
        cur = ev["max_current"] if isinstance(ev["max_current"], list) else [ev["max_current"]]
        p.ev_max_current = tuple(_number(c, "ev.max_current", 6, 80) for c in cur) or p.ev_max_current
    if "phases" in ev:
        ph = ev["phases"] if isinstance(ev["phases"], list) else [ev["phases"]]
        if not ph or any(x not in (1, 2, 3) or isinstance(x, bool) for x in ph):
            raise FleetError("ev.phases: must be 1, 2 or 3, or a list of them")
        p.ev_phases = tuple(ph)
    cards = data.get("cards", {})
    if "pool" in cards:
        p.cards = int(_number(cards["pool"], "cards.pool", 1, 10_000_000))
    if "prefix" in cards:
        if not isinstance(cards["prefix"], str) or len(cards["prefix"]) > 12:
            raise FleetError("cards.prefix: must be text of at most 12 characters (idTag is 20)")
        p.card_prefix = cards["prefix"]
    link = data.get("link", {})
    if "drops_per_hour" in link:
        p.drops_per_hour = _number(link["drops_per_hour"], "link.drops_per_hour", 0, 3600)
    if "versions" in data:
        v = data["versions"]
        if not isinstance(v, dict) or not v:
            raise FleetError(f"{source}: [versions] must map an OCPP version to its share, e.g. \"1.6\" = 1.0")
        for name, share in v.items():
            if name not in VERSIONS:
                raise FleetError(f"versions: unknown OCPP version {name!r} (known: {', '.join(VERSIONS)})")
            _number(share, f"versions.{name}", 0)
        if sum(v.values()) <= 0:
            raise FleetError("versions: the shares add up to 0")
        p.versions = {k: float(x) for k, x in v.items() if x > 0}
    if "expected_requests" in data.get("csms", {}):
        req = data["csms"]["expected_requests"]
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            raise FleetError("csms.expected_requests: must be a list of OCPP action names")
        p.expected_requests = frozenset(req)
    keys = data.get("ocpp16", {})
    if not isinstance(keys, dict):
        raise FleetError(f"{source}: [ocpp16] must be a table of configuration keys")
    p.ocpp16_keys = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in keys.items()}
    if p.ocpp16_keys:
        from station.ocpp16.config_keys import shared_definitions

        defs, names, _ = shared_definitions(1)
        for k, v in p.ocpp16_keys.items():
            name = names.get(k.lower())
            if name is None or defs[name].readonly:
                raise FleetError(f"ocpp16.{k}: not a writable 1.6 configuration key")
            check = defs[name].check
            problem = check(v) if check else None
            if problem:
                raise FleetError(f"ocpp16.{k}: {problem}")
    variables = data.get("ocpp201", {})
    if not isinstance(variables, dict):
        raise FleetError(f"{source}: [ocpp201] must be a table of \"Component.Variable[Instance]\" = value")
    p.ocpp201_variables = _ocpp201_variables(variables)
    return p


def _ocpp201_variables(table: dict) -> dict[str, str]:
    """``{"Component.Variable[Instance]": value}`` checked by the device model as SetVariables
    checks them; the store keys and values every 2.0.1 station of the fleet starts with."""
    import re

    from station.ocpp201.device_model import DeviceModel
    from station.store import MemoryStore

    if not table:
        return {}
    dm = DeviceModel(MemoryStore(), {1: [1]}, {})
    out: dict[str, str] = {}
    for name, raw in table.items():
        m = re.fullmatch(r"([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)(?:\[([A-Za-z0-9_]+)\])?", name)
        if m is None:
            raise FleetError(f"ocpp201.{name}: write it Component.Variable or Component.Variable[Instance]")
        value = str(raw).lower() if isinstance(raw, bool) else str(raw)
        item = {"component": {"name": m.group(1)}, "variable": {"name": m.group(2),
                                                                **({"instance": m.group(3)} if m.group(3) else {})},
                "attributeValue": value}
        result = dm.set_variables([item], source="fleet profile")[0]
        if result["attributeStatus"] not in ("Accepted", "RebootRequired"):
            why = result.get("attributeStatusInfo", {}).get("additionalInfo", result["attributeStatus"])
            raise FleetError(f"ocpp201.{name}: {why}")
        key = dm.stored_key(item)
        if key is not None:
            out[key] = value
    return out


def load_profile(path: str | None) -> FleetProfile:
    if path is None:
        return FleetProfile()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise FleetError(f"--profile {path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise FleetError(f"--profile {path}: not valid TOML ({e})") from None
    return parse_profile(data, f"--profile {path}")


# -- ids and shards -----------------------------------------------------------------------------
def parse_shard(text: str, shards: int | None = None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """``I/K`` (0 <= I < K) or ``auto``: I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job),
    K from ``shards`` (--shards) or FLEET_SHARDS."""
    env = os.environ if env is None else env
    if text == "auto":
        index = env.get(INDEX_ENV)
        k = shards if shards is not None else env.get(SHARDS_ENV)
        if index is None:
            raise FleetError(f"--shard auto: {INDEX_ENV} is not set (it is, in a Kubernetes Indexed Job)")
        if k is None:
            raise FleetError(f"--shard auto: give the number of shards with --shards K or {SHARDS_ENV}")
        text = f"{index}/{k}"
    i, sep, k = text.partition("/")
    if not sep or not i.strip().isdigit() or not k.strip().isdigit():
        raise FleetError(f"--shard {text}: must be I/K (e.g. 0/4) or auto")
    ii, kk = int(i), int(k)
    if not 0 <= ii < kk:
        raise FleetError(f"--shard {text}: needs 0 <= I < K")
    return ii, kk


def shard_range(count: int, shard: tuple[int, int]) -> range:
    """The station numbers of one shard: K shards cover 0..count-1 with disjoint ranges."""
    i, k = shard
    return range(count * i // k, count * (i + 1) // k)


def station_ids(prefix: str, count: int, numbers: range) -> list[str]:
    width = max(5, len(str(max(0, count - 1))))
    return [f"{prefix}{n:0{width}d}" for n in numbers]
