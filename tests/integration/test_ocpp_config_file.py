"""``--ocpp-config`` at every start (station/runtime.py), in process on virtual time over a real
websocket: a value fixed in the file is used after the restart (the field engineer's wrong
AuthorizationKey), an unchanged file never undoes what the CSMS set, a key the CSMS changed after
the file was edited keeps the CSMS's value, and the log names the keys applied and kept."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

ID = "CS001"


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{ID}:{key}".encode()).decode()


WRONG, RIGHT, BY_CSMS, LATER = "wrong-key-0000000000", "right-key-1111111111", "csms-key-2222222222", "file-key-3333333333"


@pytest.fixture
def profile1(tmp_path):
    cfg = tmp_path / "sp1.toml"
    cfg.write_text("[station]\nsecurity_profile = 1\n\n[[evse]]\nid = 1\n")
    return str(cfg)


@pytest.fixture
def ocpp_file(tmp_path):
    path = tmp_path / "engineer.json"

    def write(values: dict, age_s: float = 0.0) -> None:
        path.write_text(json.dumps(values))
        t = time.time() - age_s
        os.utime(path, (t, t))

    write.path = path
    return write


async def boot(csms, make_station, profile1, ocpp_file):
    sp = make_station(config=profile1, fast=False, extra=["--ocpp-config", str(ocpp_file.path)])
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    return sp


async def restart(csms, sp) -> None:
    await sp.stop()
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)


async def test_a_key_fixed_in_the_file_is_used_after_the_restart(csms, make_station, profile1, ocpp_file):
    ocpp_file({"AuthorizationKey": WRONG, "HeartbeatInterval": "300"})
    sp = await boot(csms, make_station, profile1, ocpp_file)
    assert csms.auth_headers[-1] == basic(WRONG)
    assert "--ocpp-config" in sp.log() and "applied AuthorizationKey" in sp.log()
    ocpp_file({"AuthorizationKey": RIGHT, "HeartbeatInterval": "300"})  # the engineer fixes it
    await restart(csms, sp)
    assert csms.auth_headers[-1] == basic(RIGHT)
    assert f"--ocpp-config {ocpp_file.path}: applied AuthorizationKey\n" in sp.log()  # only the key that changed
    assert RIGHT not in sp.log() and WRONG not in sp.log()  # the secret is never logged


async def test_an_unchanged_file_does_not_undo_what_the_csms_set(csms, make_station, profile1, ocpp_file):
    ocpp_file({"AuthorizationKey": RIGHT, "MeterValueSampleInterval": "10"}, age_s=60)
    sp = await boot(csms, make_station, profile1, ocpp_file)
    for key, value in (("MeterValueSampleInterval", "17"), ("AuthorizationKey", BY_CSMS)):
        assert (await csms.call("ChangeConfiguration", {"key": key, "value": value}))["status"] == "Accepted"
    await restart(csms, sp)
    assert csms.auth_headers[-1] == basic(BY_CSMS)
    got = await csms.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert got["configurationKey"][0]["value"] == "17"
    assert f"--ocpp-config {ocpp_file.path}: nothing new to apply" in sp.log()


async def test_a_key_the_csms_changed_after_the_file_was_edited_stays(csms, make_station, profile1, ocpp_file):
    ocpp_file({"AuthorizationKey": RIGHT}, age_s=60)
    sp = await boot(csms, make_station, profile1, ocpp_file)
    ocpp_file({"AuthorizationKey": LATER}, age_s=30)  # edited on site while running...
    assert (await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": BY_CSMS}))["status"] == "Accepted"
    await restart(csms, sp)  # ...but the CSMS changed the key after that
    assert csms.auth_headers[-1] == basic(BY_CSMS)
    assert "--ocpp-config: AuthorizationKey not applied: the CSMS set it at " in sp.log()
    assert "after the file was edited; its value stays" in sp.log()


async def test_a_file_edited_after_the_csms_change_wins(csms, make_station, profile1, ocpp_file):
    ocpp_file({"AuthorizationKey": RIGHT}, age_s=60)
    sp = await boot(csms, make_station, profile1, ocpp_file)
    assert (await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": BY_CSMS}))["status"] == "Accepted"
    ocpp_file({"AuthorizationKey": LATER}, age_s=-1)  # the engineer edits the file after the CSMS's change
    await restart(csms, sp)
    assert csms.auth_headers[-1] == basic(LATER)
    assert f"--ocpp-config {ocpp_file.path}: applied AuthorizationKey" in sp.log()


async def test_keys_the_station_does_not_have_are_named_in_the_log(csms, make_station, profile1, ocpp_file):
    ocpp_file({"NoSuchKeyEnabled": "true", "NumberOfConnectors": "4", "HeartbeatInterval": "abc"})
    sp = await boot(csms, make_station, profile1, ocpp_file)
    log = sp.log()
    assert "--ocpp-config: NoSuchKeyEnabled: not a configuration key of this station" in log
    assert "--ocpp-config: NumberOfConnectors: read-only" in log
    assert "--ocpp-config: HeartbeatInterval: must be a whole number" in log
