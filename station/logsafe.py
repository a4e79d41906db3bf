"""Text from the network made safe for the log: control characters escaped, secrets masked, length bounded.

Anything a CSMS (or a local client) sends can contain a newline, and a newline in a log line
forges a second line ("... INFO station: transaction accepted"). :func:`text` escapes every
control character (C0, DEL, C1, and the Unicode line and paragraph separators) the way Python
writes them in a string literal, and cuts very long text. :func:`frame` does that for a whole
OCPP-J frame and also masks the values of the secrets a frame may carry: 1.6 ChangeConfiguration
``AuthorizationKey`` and 2.0.1 SetVariables ``BasicAuthPassword`` (the security profile 1/2
password).

Use them wherever the log shows CSMS-supplied text: ``log.warning("... %s", logsafe.text(x))``.
:class:`Throttle` bounds how many lines of one kind a peer can make us write.
"""

from __future__ import annotations

import json
import re

SECRET_KEYS = frozenset({"authorizationkey", "basicauthpassword"})  # compared case-insensitively
MASK = "***"
TEXT_LIMIT = 2000  # characters of one piece of text in a log line
FRAME_LIMIT = 8192  # characters of a frame in the DEBUG frame log

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    c = match.group()
    return _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def text(value: object, limit: int = TEXT_LIMIT) -> str:
    """``value`` as one log-safe line: control characters escaped (``\\n``, ``\\x1b``), at most
    ``limit`` characters of it (the rest is counted, not shown)."""
    s = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
    more = len(s) - limit
    if more > 0:
        s = s[:limit]
    s = _CONTROL.sub(_escape, s)
    return s + f"... ({more} more characters)" if more > 0 else s


def _mask(node: object) -> bool:
    """Mask secret values in a parsed frame in place (iteratively: frames may be deep); True if any."""
    masked = False
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            key = cur.get("key")
            if isinstance(key, str) and key.lower() in SECRET_KEYS and "value" in cur:  # 1.6 ChangeConfiguration
                cur["value"], masked = MASK, True
            variable = cur.get("variable")
            name = variable.get("name") if isinstance(variable, dict) else None
            if isinstance(name, str) and name.lower() in SECRET_KEYS and "attributeValue" in cur:  # 2.0.1 SetVariables
                cur["attributeValue"], masked = MASK, True
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return masked


def frame(raw: str | bytes, limit: int = FRAME_LIMIT) -> str:
    """An OCPP-J frame for the log: secrets masked, control characters escaped, at most ``limit``
    characters. A frame that names a secret but cannot be parsed is not shown at all."""
    if isinstance(raw, bytes):
        return f"<binary message of {len(raw)} bytes>"
    lowered = raw.lower()
    if any(k in lowered for k in SECRET_KEYS):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            return f"<a frame of {len(raw)} characters that names a secret; not shown>"
        if _mask(parsed):
            raw = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    return text(raw, limit)


class Throttle:
    """At most ``burst`` log lines of one kind per ``every`` seconds (a CSMS sending garbage must not
    fill the disk); the lines held back are counted and the next line that is let through says how
    many. ``allow(now)`` -> (log it?, lines held back since the last one logged)."""

    def __init__(self, burst: int = 10, every: float = 60.0) -> None:
        self.burst = burst
        self.every = every
        self._window_start: float | None = None
        self._in_window = 0
        self.held_back = 0

    def allow(self, now: float) -> tuple[bool, int]:
        if self._window_start is None or now - self._window_start >= self.every:
            self._window_start, self._in_window = now, 0
        if self._in_window < self.burst:
            self._in_window += 1
            held, self.held_back = self.held_back, 0
            return True, held
        self.held_back += 1
        return False, 0


__all__ = ["MASK", "SECRET_KEYS", "Throttle", "frame", "text"]
