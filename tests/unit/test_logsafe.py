"""station/logsafe.py: CSMS text in the log is one line, bounded, and never shows a secret."""

from __future__ import annotations

import json

from station import logsafe


def test_control_characters_are_escaped():
    assert logsafe.text("a\nINFO forged\r\x1b[31m\x00\u2028\x85") == "a\\nINFO forged\\r\\x1b[31m\\x00\\u2028\\x85"
    assert "\n" not in logsafe.text(b"x\ny\xff")


def test_long_text_is_cut_and_counted():
    out = logsafe.text("x" * 5000, 100)
    assert out.startswith("x" * 100) and out.endswith("(4900 more characters)") and len(out) < 140


def test_authorization_key_masked_in_a_frame():
    raw = json.dumps([2, "c1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "s3cr3t-0123456789"}])
    out = logsafe.frame(raw)
    assert "s3cr3t" not in out and '"value":"***"' in out and "AuthorizationKey" in out
    lower = json.dumps([2, "c1", "ChangeConfiguration", {"key": "authorizationKEY", "value": "s3cr3t"}])
    assert "s3cr3t" not in logsafe.frame(lower)


def test_basic_auth_password_masked_in_a_201_frame():
    raw = json.dumps([2, "c1", "SetVariables", {"setVariableData": [
        {"attributeValue": "pw-123456789012345", "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
        {"attributeValue": "300", "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}])
    out = logsafe.frame(raw)
    assert "pw-123456789012345" not in out and '"300"' in out


def test_unparsable_frame_naming_a_secret_is_not_shown():
    out = logsafe.frame('[2, "c1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "s3cr3t"')
    assert "s3cr3t" not in out and "not shown" in out


def test_other_frames_unchanged_but_escaped():
    assert logsafe.frame('[3,\n"x", {}]') == '[3,\\n"x", {}]'
    assert logsafe.frame(b"\x00\x01") == "<binary message of 2 bytes>"


def test_throttle_lets_a_burst_through_then_counts():
    t = logsafe.Throttle(burst=3, every=60)
    assert [t.allow(0)[0] for _ in range(5)] == [True, True, True, False, False]
    assert t.allow(59.9) == (False, 0)
    assert t.allow(60.0) == (True, 3)  # a new minute: the line says 3 were held back
    assert t.allow(61) == (True, 0)
