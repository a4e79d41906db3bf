"""The station config file (station/config.py) and `station config check` through the real CLI."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from station.config import EVSE_KEYS, STATION_KEYS, ConfigError, StationConfig, api_problems, load, parse

ROOT = Path(__file__).resolve().parents[2]
SIM_TOML = ROOT / "config" / "sim.toml"

GOOD = """
[station]
id = "CP-9"
ocpp = "1.6"
csms_url = "wss://csms.example.com/ocpp/"
security_profile = 2
state_dir = "/var/lib/station"
vendor = "ACME"
model = "Wallbox 22"
serial = "SN-1"
firmware_version = "1.2.3"
api = "0.0.0.0:8080"
api_token = "a-long-random-token-1234"
simulated = false

[hardware]
gpio = "gpiod"

[[evse]]
id = 1
max_current = 16.5
phases = 1
fixed_cable = true
connector_type = "sType2"
[evse.lock]
kind = "none"
[evse.reader]
kind = "none"

[[evse]]
id = 2
"""


def write(tmp_path: Path, text: str, name: str = "station.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_good_file_with_every_key(tmp_path):
    cfg = load(write(tmp_path, GOOD))
    assert (cfg.id, cfg.ocpp, cfg.security_profile, cfg.state_dir) == ("CP-9", "1.6", 2, "/var/lib/station")
    assert (cfg.vendor, cfg.model, cfg.serial, cfg.firmware_version) == ("ACME", "Wallbox 22", "SN-1", "1.2.3")
    assert cfg.api == "0.0.0.0:8080" and cfg.simulated is False and cfg.gpio == "gpiod"
    assert cfg.url_for_station() == "wss://csms.example.com/ocpp/CP-9"
    one, two = cfg.evses
    assert (one.id, one.max_current, one.phases, one.fixed_cable, one.connector_type) == (1, 16.5, 1, True, "sType2")
    assert one.devices == {"lock": {"kind": "none"}, "reader": {"kind": "none"}}
    assert (two.id, two.max_current, two.phases, two.fixed_cable, two.devices) == (2, 32.0, 3, False, {})
    assert cfg.source.endswith("station.toml")


def test_defaults_without_a_file():
    cfg = parse({})
    assert cfg.url_for_station() == "ws://127.0.0.1:9000/ocpp/CP-001"
    assert [e.id for e in cfg.evses] == [1]
    assert StationConfig().security_profile == 0


def test_the_hardware_tamper_input_is_optional_and_read_with_its_defaults():
    assert parse({}).tamper["tamper"] == -1
    cfg = parse({"hardware": {"gpio": "gpiod", "tamper": 5, "tamper_pull": "up"}})
    assert cfg.tamper == {"tamper": 5, "tamper_chip": "gpiochip0", "tamper_active_low": False, "tamper_pull": "up",
                          "tamper_interval_s": 0.5}


def test_evse_ids_default_to_their_position():
    cfg = parse({"evse": [{}, {"phases": 1}]})
    assert [e.id for e in cfg.evses] == [1, 2]


# (TOML text, the problem every message must start with: "<key path>: ...")
BAD = [
    ('[station]\ncsms_urll = "ws://x"', "station.csms_urll: unknown key"),
    ('[station]\ncsms_url = "http://x/ocpp"', "station.csms_url: must be a ws:// or wss:// URL"),
    ('[station]\ncsms_url = "ws:///ocpp"', "station.csms_url: must be a ws:// or wss:// URL with a host"),
    ('[station]\ncsms_url = 9000', "station.csms_url: must be a string"),
    ("[station]\nsecurity_profile = 4", "station.security_profile: must be 0, 1, 2 or 3"),
    ('[station]\nsecurity_profile = "1"', "station.security_profile: must be a whole number"),
    ("[station]\nsecurity_profile = true", "station.security_profile: must be a whole number"),
    ("[station]\nsecurity_profile = 2", "station.security_profile: profile 2 needs a wss:// csms_url"),
    ('[station]\nsecurity_profile = 1\ncsms_url = "wss://c/ocpp"', "station.security_profile: profile 1 uses ws://"),
    ('[station]\nocpp = "1.5"', "station.ocpp: must be one of 1.6, 2.0.1"),
    ("[station]\nocpp = 1.6", "station.ocpp: must be a string"),
    ('[station]\nid = "a/b"', "station.id: must be 1-48 characters"),
    ('[station]\nid = ""', "station.id: must be 1-48 characters"),
    ('[station]\nid = "has space"', "station.id: must be 1-48 characters"),
    (f'[station]\nid = "{"x" * 49}"', "station.id: must be 1-48 characters"),
    ('[station]\napi = "8080"', "station.api: must be HOST:PORT"),
    ('[station]\napi = "127.0.0.1:99999"', "station.api: must be HOST:PORT"),
    ('[station]\napi = ":8080"', "station.api: must be HOST:PORT"),
    ('[station]\napi_token = "short"', "station.api_token: must be at least 16 characters"),
    ('[station]\napi_token = 16', "station.api_token: must be a string"),
    ('[station]\nsecurity_profile = 3\ncsms_url = "ws://c/ocpp"', "station.security_profile: profile 3 needs a wss:// csms_url"),
    ('[station]\nid = "CP-7"\ncsms_url = "ws://c/ocpp/CP-7"', "station.csms_url: already ends with the station id 'CP-7'"),
    ('[station]\nid = "CP-7"\ncsms_url = "ws://c/ocpp/CP-7/"', "station.csms_url: already ends with the station id 'CP-7'"),
    ('[station]\nid = ".."', "station.id: must be 1-48 characters"),
    ('[station]\nid = "a\\\\b"', "station.id: must be 1-48 characters"),
    ('[station]\nsimulated = "yes"', "station.simulated: must be true or false"),
    ("[station]\nvendor = 1", "station.vendor: must be a string"),
    ('station = "CP-1"', "station: must be a table [station]"),
    ('[hardware]\ngpio = "arduino"', "hardware.gpio: must be sim, gpiod or rpigpio"),
    ('[hardware]\npins = 40', "hardware.pins: unknown key"),
    ('[hardware]\ntamper = "5"', "hardware.tamper: must be a whole number"),
    ('[hardware]\ntamper = 5\ntamper_pull = "sideways"', "hardware.tamper_pull: must be one of"),
    ('[hardware]\ntamper_interval_s = 0', "hardware.tamper_interval_s: must be between"),
    ('[hardware]\ngpio = "gpiod"\ntamper = 17\n[[evse]]\nid = 1\n[evse.relay]\nkind = "gpio"\npin = 17',
     "evse[0].relay.pin: gpiochip0 line 17 is already used by hardware.tamper"),
    ('hardware = "sim"', "hardware: must be a table [hardware]"),
    ("[extra]\nx = 1", "extra: unknown section"),
    ("[[evse]]\nid = 1\nmax_current = 100", "evse[0].max_current: must be between 6 and 80 A"),
    ("[[evse]]\nid = 1\nmax_current = 5.9", "evse[0].max_current: must be between 6 and 80 A"),
    ('[[evse]]\nid = 1\nmax_current = "32"', "evse[0].max_current: must be a number"),
    ("[[evse]]\nid = 1\nmax_current = true", "evse[0].max_current: must be a number"),
    ("[[evse]]\nid = 1\nphases = 2", "evse[0].phases: must be 1 or 3"),
    ("[[evse]]\nid = 1\nfixed_cable = 1", "evse[0].fixed_cable: must be true or false"),
    ("[[evse]]\nid = 1\n[[evse]]\nid = 1", "evse[1].id: must be a unique number from 1"),
    ("[[evse]]\nid = 0", "evse[0].id: must be a unique number from 1"),
    ('[[evse]]\nid = "1"', "evse[0].id: must be a whole number"),
    ("[[evse]]\nid = 1\ncolour = 'red'", "evse[0].colour: unknown key"),
    ('[[evse]]\nid = 1\n[evse.meter]\nkind = "magic"', "evse[0].meter.kind: 'magic' is not a known backend"),
    ('[[evse]]\nid = 1\n[evse.pilot]\nkind = "none"', "evse[0].pilot.kind: 'none' is not a known backend"),
    ('[[evse]]\nid = 1\nrelay = "sim"', "evse[0].relay: must be a table [evse.relay]"),
    ("[evse]\nid = 1", "evse: must be an array of tables: write [[evse]]"),
    ('evse = ["one"]', "evse[0]: must be a table"),
    ("evse = []", "evse: at least one [[evse]] section is needed"),
]


@pytest.mark.parametrize("text,problem", BAD, ids=[b[1].split(":")[0] + "|" + b[1].split(":")[1][:30] for b in BAD])
def test_every_problem_names_its_key(tmp_path, text, problem):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems
    for p in e.value.problems:
        assert re.match(r"^[A-Za-z_\[\]0-9.]+: \S", p), p


def test_all_problems_are_reported_at_once(tmp_path):
    text = '[station]\ncsms_url = "http://x"\nocpp = "9"\n[[evse]]\nphases = 2\nmax_current = 1\n'
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    keys = sorted(p.split(":")[0] for p in e.value.problems)
    assert keys == ["evse[0].max_current", "evse[0].phases", "station.csms_url", "station.ocpp"]
    assert str(e.value) == "\n".join(e.value.problems)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "missing.toml")
    assert e.value.problems[0].startswith(f"{tmp_path / 'missing.toml'}: cannot read the file")
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, "[station\nid = 1"))
    assert "not valid TOML" in e.value.problems[0] and "line 1" in e.value.problems[0]


# -- config/sim.toml: the documented example ---------------------------------------------------

def test_sim_example_is_valid_and_simulated():
    cfg = load(SIM_TOML)
    assert cfg.gpio == "sim"
    assert [e.id for e in cfg.evses] == [1, 2]
    for e in cfg.evses:
        assert all(dev.get("kind", "sim") in ("sim", "none") for dev in e.devices.values())
    assert cfg.evses[1].fixed_cable and cfg.evses[1].devices["reader"] == {"kind": "none"}


def test_sim_example_documents_every_key():
    """Every key the parser knows appears in config/sim.toml with a comment line right above it."""
    lines = SIM_TOML.read_text().splitlines()
    data = tomllib.loads(SIM_TOML.read_text())
    wanted = [f"station.{k}" for k in STATION_KEYS] + [f"evse.{k}" for k in EVSE_KEYS] + ["hardware.gpio"]
    wanted += [f"evse.{dev}.kind" for dev in ("relay", "lock", "pilot", "meter", "reader")]
    section = ""
    documented: set[str] = set()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("["):
            section = s.strip("[]")
            continue
        m = re.match(r"^([a-z_]+)\s*=", s)
        if m:
            above = lines[i - 1].strip() if i else ""
            if above.startswith("#") or "#" in line:
                documented.add(f"{section}.{m.group(1)}")
    missing = [k for k in wanted if k not in documented]
    assert not missing, f"undocumented in config/sim.toml: {missing}"
    assert set(data) == {"station", "hardware", "evse"}


# -- board profiles: config/rpi*.toml ---------------------------------------------------------

BOARD_PROFILES = sorted((ROOT / "config").glob("rpi*.toml"))


def test_there_are_pi4_and_pi5_board_profiles():
    names = [p.name for p in BOARD_PROFILES]
    assert any(n.startswith("rpi4-") for n in names) and any(n.startswith("rpi5-") for n in names)


@pytest.mark.parametrize("path", BOARD_PROFILES, ids=lambda p: p.name)
def test_board_profile_is_valid_and_uses_real_backends(path):
    cfg = load(path)
    assert cfg.gpio in ("gpiod", "rpigpio")
    for e in cfg.evses:
        kinds = {dev: sec.get("kind", "sim") for dev, sec in e.devices.items()}
        assert "sim" not in kinds.values(), f"{path.name} evse {e.id}: simulated device in a board profile: {kinds}"
        assert set(kinds) == {"relay", "lock", "pilot", "meter", "reader"}


@pytest.mark.parametrize("path", BOARD_PROFILES, ids=lambda p: p.name)
def test_board_profile_has_a_wiring_table(path):
    """Every GPIO line a profile uses is named in its wiring comment (pin, device, active level)."""
    text = path.read_text()
    data = tomllib.loads(text)
    for evse in data["evse"]:
        for dev in ("relay", "lock"):
            for key in ("pin", "feedback", "lock_pin", "unlock_pin"):
                line = evse.get(dev, {}).get(key)
                if isinstance(line, int) and line >= 0:
                    assert re.search(rf"GPIO{line}\b", text), f"{path.name}: GPIO{line} ({dev}.{key}) not in the wiring table"


# -- the real CLI --------------------------------------------------------------------------------

def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", "config", "check", str(path)], capture_output=True,
                          text=True, timeout=30, cwd=ROOT)


def test_cli_config_check_sim_example_passes():
    r = check(SIM_TOML)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{SIM_TOML}: OK (station SIM-001, OCPP 1.6, 2 EVSE(s))"
    assert r.stderr == ""


def test_cli_config_check_good_file(tmp_path):
    r = check(write(tmp_path, GOOD))
    assert r.returncode == 0 and "OK (station CP-9, OCPP 1.6, 2 EVSE(s))" in r.stdout


def test_cli_config_check_lists_every_problem_and_exits_1(tmp_path):
    bad = write(tmp_path, '[station]\ncsms_url = "http://nope"\n[[evse]]\nphases = 2\n')
    r = check(bad)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[0] == f"{bad}: 2 problem(s):"
    assert "  - station.csms_url: must be a ws:// or wss:// URL" in r.stderr
    assert "  - evse[0].phases: must be 1 or 3, got 2" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text,needle", [
    ("this is = = not toml", "not valid TOML"),
    ('evse = ["one"]', "evse[0]: must be a table"),
    ('hardware = 3', "hardware: must be a table"),
])
def test_cli_config_check_never_shows_a_traceback(tmp_path, text, needle):
    r = check(write(tmp_path, text))
    assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr


def test_cli_config_check_missing_file(tmp_path):
    r = check(tmp_path / "nope.toml")
    assert r.returncode == 1 and "cannot read the file" in r.stderr and "Traceback" not in r.stderr


def test_cli_config_check_needs_a_file():
    r = subprocess.run([sys.executable, "-m", "station", "config", "check"], capture_output=True, text=True,
                       timeout=30, cwd=ROOT)
    assert r.returncode == 2 and "file" in r.stderr


def test_run_refuses_bad_flags_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "station", "run", "--csms-url", "ftp://x", "--state-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 2 and "station.csms_url" in r.stderr and "Traceback" not in r.stderr


def test_run_refuses_a_bad_config_file(tmp_path):
    bad = write(tmp_path, "[[evse]]\nphases = 2\n")
    r = subprocess.run([sys.executable, "-m", "station", "run", "--config", str(bad)], capture_output=True, text=True,
                       timeout=30, cwd=ROOT)
    assert r.returncode == 2 and "evse[0].phases" in r.stderr and "Traceback" not in r.stderr


def test_two_devices_on_one_gpio_line_or_pwm_channel_are_named(tmp_path):
    text = (ROOT / "config" / "rpi5-2evse.toml").read_text()
    text = text.replace("pin = 16\n", "pin = 23\n").replace("pwm_channel = 3", "pwm_channel = 2")
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    assert "evse[1].relay.pin: gpiochip0 line 23 is already used by evse[0].relay.pin" in e.value.problems
    assert "evse[1].pilot.pwm_channel: PWM chip 0 channel 2 is already used by evse[0].pilot.pwm_channel" in e.value.problems


def test_only_simulated_gpio_may_wire_an_input_to_its_output(tmp_path):
    text = """
[station]
id = "CP-1"
[hardware]
gpio = "{gpio}"
[[evse]]
id = 1
[evse.relay]
kind = "gpio"
pin = 23
feedback = 23
"""
    assert load(write(tmp_path, text.format(gpio="sim"))).evses[0].devices["relay"]["feedback"] == 23
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text.format(gpio="gpiod")))
    assert e.value.problems == ["evse[0].relay.feedback: gpiochip0 line 23 is already used by evse[0].relay.pin"]


# -- wiring that cannot work, on every GPIO backend ----------------------------------------------

PINS = """
[station]
id = "CP-1"
[hardware]
gpio = "{gpio}"
[[evse]]
id = 1
[evse.relay]
kind = "gpio"
pin = 23
[evse.lock]
kind = "gpio"
lock_pin = {lock}
unlock_pin = {unlock}
"""


@pytest.mark.parametrize("gpio", ["sim", "gpiod", "rpigpio"])
def test_lock_pin_equal_to_unlock_pin_is_refused_on_every_backend(tmp_path, gpio):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, PINS.format(gpio=gpio, lock=5, unlock=5)))
    assert e.value.problems == ["evse[0].lock.unlock_pin: gpiochip0 line 5 is already used by evse[0].lock.lock_pin"]


@pytest.mark.parametrize("gpio", ["sim", "gpiod"])
def test_two_outputs_on_one_line_are_refused_on_every_backend(tmp_path, gpio):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, PINS.format(gpio=gpio, lock=23, unlock=6)))
    assert e.value.problems == ["evse[0].lock.lock_pin: gpiochip0 line 23 is already used by evse[0].relay.pin"]
    assert load(write(tmp_path, PINS.format(gpio=gpio, lock=5, unlock=6))).evses[0].devices["lock"]["lock_pin"] == 5


def test_one_line_on_two_chips_is_two_lines(tmp_path):
    text = PINS.format(gpio="gpiod", lock=23, unlock=6) + 'lock_pin_chip = "gpiochip4"\n'
    assert load(write(tmp_path, text)).evses[0].devices["lock"]["lock_pin_chip"] == "gpiochip4"


def _pi5(tmp_path, old: str, new: str) -> list[str]:
    text = (ROOT / "config" / "rpi5-2evse.toml").read_text()
    assert old in text
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text.replace(old, new, 1)))
    return e.value.problems


def test_one_adc_input_for_both_pilot_levels_is_refused(tmp_path):
    assert _pi5(tmp_path, "channel_low = 1", "channel_low = 0") == [
        "evse[0].pilot.channel_low: ADC input 0 of I2C bus 1 address 0x48 is already used by evse[0].pilot.channel_high"]


def test_two_pilots_on_one_adc_input_are_refused(tmp_path):
    problems = _pi5(tmp_path, "channel_high = 2", "channel_high = 1")
    assert problems == ["evse[1].pilot.channel_high: ADC input 1 of I2C bus 1 address 0x48 is already used by "
                        "evse[0].pilot.channel_low"]


METERS = """
[[evse]]
id = {n}
[evse.meter]
kind = "modbus"
transport = "rtu"
model = "sdm72d"
port = "/dev/ttyUSB0"
unit = {unit}
[evse.reader]
kind = "pn532"
port = "{reader}"
"""


def test_two_meters_at_one_modbus_address_or_two_readers_on_one_port_are_refused(tmp_path):
    good = METERS.format(n=1, unit=1, reader="/dev/ttyS0") + METERS.format(n=2, unit=2, reader="/dev/ttyS1")
    assert len(load(write(tmp_path, good)).evses) == 2  # one RS-485 bus, two addresses: fine
    bad = METERS.format(n=1, unit=1, reader="/dev/ttyS0") + METERS.format(n=2, unit=1, reader="/dev/ttyS0")
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, bad))
    assert e.value.problems == [
        "evse[1].meter.unit: Modbus unit 1 on /dev/ttyUSB0 is already used by evse[0].meter.unit",
        "evse[1].reader.port: serial port /dev/ttyS0 is already used by evse[0].reader.port",
    ]


# -- the local API needs a token beyond loopback ------------------------------------------------

@pytest.mark.parametrize("api,token,ok", [
    ("127.0.0.1:8080", None, True), ("127.1.2.3:8080", None, True), ("localhost:8080", None, True),
    ("[::1]:8080", None, True), ("0.0.0.0:8080", None, False), ("192.168.1.5:8080", None, False),
    ("[::]:8080", None, False), ("charger.local:8080", None, False), ("0.0.0.0:8080", "x" * 16, True),
])
def test_api_beyond_loopback_needs_a_token(api, token, ok):
    problems = api_problems(StationConfig(api=api, api_token=token))
    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].startswith(f"station.api: {api.rpartition(':')[0]} is not a loopback address")
        assert "station.api_token" in problems[0] and "STATION_API_TOKEN" in problems[0]


def test_api_address_strips_ipv6_brackets():
    assert StationConfig(api="[::1]:8081").api_address() == ("::1", 8081)
    assert StationConfig(api="127.0.0.1:0").api_address() == ("127.0.0.1", 0)


def test_cli_config_check_wants_a_token_for_a_network_api(tmp_path):
    path = write(tmp_path, '[station]\napi = "0.0.0.0:8080"\n')
    r = check(path)
    assert r.returncode == 1 and "station.api: 0.0.0.0 is not a loopback address" in r.stderr
    env = {**__import__("os").environ, "STATION_API_TOKEN": "t" * 20}
    r = subprocess.run([sys.executable, "-m", "station", "config", "check", str(path)], capture_output=True,
                       text=True, timeout=30, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr


# -- the state directory is per station id -------------------------------------------------------

def test_default_state_directory_is_per_station_id():
    assert parse({"station": {"id": "CP-A"}}).state_path() == Path("state") / "CP-A"
    assert parse({"station": {"id": "CP-B"}}).state_path() == Path("state") / "CP-B"
    assert parse({"station": {"id": "CP-A", "state_dir": "/var/lib/station"}}).state_path() == Path("/var/lib/station")


# -- issue 8: start-up and config input that used to give a traceback or a silent default ---------

from station.cli import _parser, build_config, check_csms_host  # noqa: E402


def flags(*args: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        build_config(_parser().parse_args(["run", "--sim", *args]))
    return e.value.problems


@pytest.mark.parametrize("text,problem", [
    ('[station]\ncsms_url = "ws://[::1/ocpp"', "station.csms_url: not a valid URL (Invalid IPv6 URL)"),
    ('[station]\ncsms_url = "ws://csms:99999/ocpp"', "station.csms_url: the port must be a number from 1 to 65535, got 99999"),
    ('[station]\ncsms_url = "ws://csms:0/ocpp"', "station.csms_url: the port must be a number from 1 to 65535, got 0"),
    ('[station]\ncsms_url = "ws://csms:http/ocpp"', "station.csms_url: the port must be a number from 1 to 65535, got http"),
    ('[station]\ncsms_url = "ws://csms/ocpp?a=1"', "station.csms_url: must not have a ?query or #fragment"),
    ('[station]\ncsms_url = "ws://csms/oc pp"', "station.csms_url: must not contain spaces"),
    ('[station]\nid = "CP\\n1"', "station.id: must be 1-48 characters"),
    ('[station]\napi = "[::1:8080"', "station.api: must be HOST:PORT (an IPv6 address in brackets"),
    ('[station]\napi = "[]:8080"', "station.api: must be HOST:PORT"),
])
def test_urls_ports_and_ids_that_used_to_pass_or_crash_are_named(tmp_path, text, problem):
    """ws://[::1/ocpp raised ValueError (a traceback) in `config check` and `run`; ws://csms:99999
    passed the check and then failed at every connect."""
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    assert [p for p in e.value.problems if p.startswith(problem)], e.value.problems


@pytest.mark.parametrize("url", ["ws://[::1]:9000/ocpp", "wss://[2001:db8::1]/ocpp", "ws://csms.example:65535/ocpp",
                                 "ws://127.0.0.1:1/"])
def test_ipv6_and_edge_ports_are_fine(tmp_path, url):
    assert load(write(tmp_path, f'[station]\ncsms_url = "{url}"\nsecurity_profile = {2 if url.startswith("wss") else 0}')
                ).csms_url == url


def test_invalid_utf8_is_one_problem_with_its_line(tmp_path):
    p = tmp_path / "latin1.toml"
    p.write_bytes('[station]\nvendor = "ACME"\nmodel = "Bo\xeete"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        load(p)
    assert e.value.problems == [f"{p}: not valid UTF-8 (byte 0xee in line 3): a TOML file must be saved as UTF-8"]


def test_deeply_nested_toml_and_a_huge_file_are_one_problem(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, "x = " + "[" * 5000 + "]" * 5000))
    assert e.value.problems[0].endswith("not valid TOML: arrays or tables nested too deeply")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError) as e:
        load(big)
    assert e.value.problems == [f"{big}: larger than 1024 KiB: not a station config file"]


@pytest.mark.parametrize("flag", ["--id", "--csms-url", "--state-dir", "--api", "--config", "--ocpp-config"])
def test_an_empty_flag_is_refused_not_replaced_by_the_default(flag):
    """`--id ''` used to run as CP-001, `--csms-url ''` against ws://127.0.0.1:9000/ocpp."""
    assert flags(flag, "") == [f"{flag}: empty; leave the flag out to use the default"]
    assert flags(flag, "  ") == [f"{flag}: empty; leave the flag out to use the default"]


def test_a_bad_flag_value_names_the_flag_and_the_key():
    assert flags("--csms-url", "ws://[::1/ocpp")[0].startswith("--csms-url / station.csms_url: not a valid URL")
    assert flags("--csms-url", "ws://h:99999/ocpp")[0].startswith("--csms-url / station.csms_url: the port")
    assert flags("--id", "a/b")[0].startswith("--id / station.id: must be 1-48 characters")
    assert flags("--api", "127.0.0.1")[0].startswith("--api / station.api: must be HOST:PORT")


def test_an_ocpp_config_file_that_is_not_utf8_or_nested_too_deeply(tmp_path):
    p = tmp_path / "ocpp.json"
    p.write_bytes(b'{"AuthorizationKey": "\xff"}')
    assert flags("--ocpp-config", str(p)) == [f"--ocpp-config {p}: not valid UTF-8 (byte 0xff at offset 22)"]
    p.write_text("[" * 100000 + "]" * 100000)
    assert flags("--ocpp-config", str(p)) == [f"--ocpp-config {p}: not valid JSON (nested too deeply)"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _host_check(url: str, monkeypatch=None, ipv6: bool = True) -> tuple[str | None, list[logging.LogRecord]]:
    import asyncio

    import station.cli

    log = logging.getLogger("test.hostcheck")
    lines = _Lines()
    log.addHandler(lines)
    if monkeypatch is not None:
        monkeypatch.setattr(station.cli, "has_ipv6", lambda: ipv6)
    try:
        line = asyncio.run(check_csms_host(StationConfig(csms_url=url), log, timeout=5))
    finally:
        log.removeHandler(lines)
    return line, lines.records


def test_an_unresolvable_csms_host_is_one_warning_naming_the_setting():
    line, records = _host_check("ws://no-such-csms.invalid/ocpp")  # .invalid never resolves (RFC 6761)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert line is not None and line.startswith(
        "--csms-url / station.csms_url: the CSMS host no-such-csms.invalid cannot be resolved (")
    assert line.endswith("the station keeps trying")


def test_a_loopback_or_resolvable_csms_host_says_nothing():
    assert _host_check("ws://127.0.0.1:9000/ocpp") == (None, [])
    assert _host_check("ws://localhost:9000/ocpp") == (None, [])
    assert _host_check("ws://[::1]:9000/ocpp") == (None, [])  # this machine has IPv6 (see the ::1 station test)


def test_an_ipv6_csms_on_a_machine_without_ipv6_is_one_error(monkeypatch):
    line, records = _host_check("ws://[::1]:9000/ocpp", monkeypatch, ipv6=False)
    assert [r.levelno for r in records] == [logging.ERROR]
    assert line == ("--csms-url / station.csms_url: ::1 is an IPv6 address, but this machine has no IPv6: the station "
                    "cannot reach the CSMS there; use its IPv4 address or a name")
