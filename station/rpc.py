"""OCPP-J remote procedure calls without I/O: frames in, events out; our messages out as text.

Like the websockets library's sans-I/O ``protocol.py`` (or h11), :class:`RpcConnection` never
touches a socket or a loop. The link feeds it every text frame the CSMS sent
(:meth:`RpcConnection.receive`) and gets one event back; it asks it for the text of our own
Call, CallResult and CallError frames. What the connection keeps:

- the validation of incoming frames: a text message (never binary), JSON without NaN or
  Infinity, nested at most :data:`MAX_DEPTH` deep (checked without recursion: a 2 KB frame
  nested 1,000 deep is refused, it cannot crash the parser), the ``[type, id, ...]`` array with
  an integer message type and a string message id of 1 to 36 characters, the Call shape, the
  action among the version's known actions, the payload against its JSON schema
  (``station.ocpp_schema``); a frame that breaks a rule becomes :class:`FrameRejected` carrying
  the CallError to send back (or none, where OCPP-J has no message id to answer to, or says to
  ignore the message);
- one outgoing Call in flight (:meth:`call` refuses a second one), matched to its CallResult or
  CallError by message id; a response to no call of ours is :class:`ResponseIgnored`; a
  CallResult whose payload breaks the action's response schema is an :class:`ErrorReceived`
  (with the payload in ``result``): the caller treats it like a CallError and keeps its message;
- the CSMS's Calls we still have to answer (so a CallResult is validated against its action's
  schema, and an answer goes out at most once);
- the CallError dialect of the OCPP version (:class:`Dialect`): 1.6 says FormationViolation and
  OccurenceConstraintViolation and has no RpcFrameworkError (a frame without a readable message
  id is dropped); 2.0.1 says FormatViolation, OccurrenceConstraintViolation,
  MessageTypeNotSupported and RpcFrameworkError (message id "-1" when none can be read).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from ocpp.exceptions import OCPPError

from station import ocpp_schema

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_DESCRIPTION = 255  # OCPP-J: errorDescription is at most 255 characters
MAX_MESSAGE_ID = 36  # OCPP-J: the message id is at most 36 characters (a UUID)
MAX_DEPTH = ocpp_schema.MAX_DEPTH + 1  # the frame array around the payload


@dataclass(frozen=True)
class Dialect:
    """The CallError codes of one OCPP-J version and how the other version's spellings map to them."""

    version: str
    codes: frozenset[str]
    format_violation: str
    occurrence_violation: str
    message_type_not_supported: str | None  # None: a message of unknown type is ignored (1.6)
    rpc_framework_error: str | None  # None: no such code, a frame without a message id is dropped
    spellings: dict[str, str]  # the other version's names -> ours

    def code(self, code: str) -> str:
        """``code`` as this version spells it; a code this version does not define is GenericError."""
        code = self.spellings.get(code, code)
        return code if code in self.codes else "GenericError"


_COMMON = {"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
           "PropertyConstraintViolation", "TypeConstraintViolation", "GenericError"}

OCPP16 = Dialect(
    version="1.6",
    codes=frozenset(_COMMON | {"FormationViolation", "OccurenceConstraintViolation"}),
    format_violation="FormationViolation",
    occurrence_violation="OccurenceConstraintViolation",
    message_type_not_supported=None,  # OCPP-J 1.6 4.1.3: an unknown message type is ignored
    rpc_framework_error=None,
    spellings={"FormatViolation": "FormationViolation", "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
               "MessageTypeNotSupported": "FormationViolation", "RpcFrameworkError": "FormationViolation"},
)
OCPP201 = Dialect(
    version="2.0.1",
    codes=frozenset(_COMMON | {"FormatViolation", "OccurrenceConstraintViolation", "MessageTypeNotSupported",
                               "RpcFrameworkError"}),
    format_violation="FormatViolation",
    occurrence_violation="OccurrenceConstraintViolation",
    message_type_not_supported="MessageTypeNotSupported",
    rpc_framework_error="RpcFrameworkError",
    spellings={"FormationViolation": "FormatViolation", "OccurenceConstraintViolation": "OccurrenceConstraintViolation"},
)
DIALECTS = {"1.6": OCPP16, "2.0.1": OCPP201}


# -- events ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallReceived:
    """A valid Call of the CSMS: answer it with :meth:`RpcConnection.result` or :meth:`RpcConnection.error`."""

    unique_id: str
    action: str
    payload: dict


@dataclass(frozen=True)
class ResultReceived:
    """The schema-valid CallResult of our call."""

    unique_id: str
    action: str
    payload: dict


@dataclass(frozen=True)
class ErrorReceived:
    """The CallError answering our call, or a CallResult that breaks the response schema (or is
    no JSON object), said as one: then ``code`` names the violation and ``result`` holds the payload."""

    unique_id: str
    action: str
    code: str
    description: str
    details: Any = None
    result: Any = None

    @property
    def invalid_result(self) -> bool:
        """True when this is the CSMS's CallResult that breaks the schema, not its CallError."""
        return self.result is not None


@dataclass(frozen=True)
class FrameRejected:
    """A frame that breaks OCPP-J; ``reply`` is the CallError text to send, None where there is none."""

    reason: str
    reply: str | None


@dataclass(frozen=True)
class ResponseIgnored:
    """A CallResult or CallError that answers no call of ours (late after a timeout, or a wrong id)."""

    unique_id: str
    reason: str


Event = CallReceived | ResultReceived | ErrorReceived | FrameRejected | ResponseIgnored


@dataclass(frozen=True)
class PendingCall:
    unique_id: str
    action: str


class CallInFlight(Exception):
    """:meth:`RpcConnection.call` while our previous call has no answer yet (OCPP-J allows one)."""


class InvalidResult(Exception):
    """Our own CallResult payload breaks the schema: a bug of ours, answer InternalError instead."""


def _text(frame: list) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class _NotJson:
    """``NaN``, ``Infinity`` or ``-Infinity`` in a frame: Python reads them, JSON has no such values."""

    def __init__(self, name: str) -> None:
        self.name = name


# the message id of a frame too deep to parse, read from its start: [2, "id", ...
_HEAD = re.compile(r'\s*\[\s*([0-9]+)\s*,\s*"([^"\\\x00-\x1f]{1,' + str(MAX_MESSAGE_ID) + '})"')


def _frame_problem(frame: object) -> str | None:
    """Why a parsed frame is not JSON OCPP-J can carry: too deep, or NaN / Infinity in it (iteratively)."""
    stack: list[tuple[object, int]] = [(frame, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                return f"the message is nested deeper than {MAX_DEPTH} levels"
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
        elif isinstance(node, _NotJson):
            return f"{node.name} is not a JSON value"
    return None


class RpcConnection:
    """The OCPP-J state of one websocket connection (or of a link across reconnects: :meth:`reset`)."""

    def __init__(self, version: str, first_id: int | None = None, validate: bool = True) -> None:
        if version not in DIALECTS:
            raise ValueError(f"no OCPP-J dialect for version {version!r}")
        self.version = version
        self.dialect = DIALECTS[version]
        self.validate = validate
        self._next_id = random.randrange(1 << 20) if first_id is None else first_id
        self.pending: PendingCall | None = None
        self._to_answer: dict[str, str] = {}  # CSMS call id -> action

    # -- our calls -------------------------------------------------------------------------
    def call(self, action: str, payload: dict, unique_id: str | None = None) -> tuple[str, str]:
        """The text of a new Call and its message id. Raises CallInFlight, or an OCPPError when
        ``payload`` breaks the action's schema (a bug of ours; nothing is sent). ``unique_id``:
        the id to send it with (a queued message resent with the id it was first sent with)."""
        if self.pending is not None:
            raise CallInFlight(f"{action} while {self.pending.action} (id {self.pending.unique_id}) waits")
        if self.validate:
            ocpp_schema.validate(self.version, action, payload, ranges=False)  # ours: sent as it is
        if unique_id is None:
            self._next_id += 1
            unique_id = str(self._next_id)
        self.pending = PendingCall(unique_id, action)
        return unique_id, _text([CALL, unique_id, action, payload])

    def forget_call(self) -> PendingCall | None:
        """Give up our call in flight (timed out, connection lost); a late answer is then ignored."""
        pending, self.pending = self.pending, None
        return pending

    def reset(self) -> PendingCall | None:
        """A new connection: nothing pending, nothing to answer. Returns the call that was waiting."""
        self._to_answer.clear()
        return self.forget_call()

    # -- our answers -----------------------------------------------------------------------
    @property
    def unanswered(self) -> int:
        return len(self._to_answer)

    def result(self, unique_id: str, payload: dict) -> str:
        """The CallResult text answering the CSMS's call ``unique_id``. Raises InvalidResult (and
        keeps the call open for :meth:`error`) when the payload breaks the response schema."""
        action = self._to_answer.get(unique_id)
        if action is None:
            raise KeyError(f"no call {unique_id!r} of the CSMS waits for an answer")
        if self.validate:
            try:
                ocpp_schema.validate(self.version, action, payload, result=True, ranges=False)
            except OCPPError as e:
                raise InvalidResult(f"{action} response: {e.description}") from None
        del self._to_answer[unique_id]
        return _text([CALLRESULT, unique_id, payload])

    def error(self, unique_id: str, code: str, description: str = "", details: Any = None) -> str:
        """The CallError text answering ``unique_id``, ``code`` in this version's spelling."""
        self._to_answer.pop(unique_id, None)
        return self._error(unique_id, code, description, details)

    def error_for(self, unique_id: str, exc: OCPPError) -> str:
        return self.error(unique_id, exc.code, exc.description or "", exc.details)

    def _error(self, unique_id: str, code: str, description: str, details: Any = None) -> str:
        return _text([CALLERROR, unique_id, self.dialect.code(code), str(description)[:MAX_DESCRIPTION],
                      details if isinstance(details, dict) else {}])

    # -- frames of the CSMS ----------------------------------------------------------------
    def receive(self, raw: str | bytes) -> Event:
        """One websocket message of the CSMS -> the event it is. Never raises on any input."""
        d = self.dialect
        if not isinstance(raw, str):
            return self._unreadable("a binary websocket message: OCPP-J sends text messages only", None)
        try:
            frame = json.loads(raw, parse_constant=_NotJson)
        except RecursionError:
            return self._too_deep(raw)
        except ValueError:
            return self._unreadable("the message is not valid JSON", None)
        if not isinstance(frame, list) or not frame:
            return self._unreadable("the message is not an OCPP-J array [type, id, ...]", None)
        kind = frame[0]
        unique_id = frame[1] if len(frame) > 1 else None
        if not isinstance(unique_id, str) or not unique_id:
            return self._unreadable("the message has no string message id", None)
        if len(unique_id) > MAX_MESSAGE_ID:
            return self._unreadable(f"the message id is longer than {MAX_MESSAGE_ID} characters", None)
        if type(kind) is not int or kind not in (CALL, CALLRESULT, CALLERROR):
            reason = f"unknown message type id {kind!r:.40}"
            code = d.message_type_not_supported
            return FrameRejected(reason, None if code is None else self._error(unique_id, code, reason))
        problem = _frame_problem(frame)
        if kind == CALL:
            if problem is not None:
                return FrameRejected(problem, self._error(unique_id, d.format_violation, problem))
            return self._call(frame, unique_id)
        return self._response(frame, kind, unique_id, problem)

    def _unreadable(self, reason: str, unique_id: str | None) -> FrameRejected:
        code = self.dialect.rpc_framework_error
        reply = None if code is None else self._error(unique_id or "-1", code, reason)
        return FrameRejected(reason, reply)

    def _too_deep(self, raw: str) -> Event:
        """A frame the JSON parser cannot read for its depth: answered by its message id if its
        start shows one (a Call: FormationViolation; a response to our call: it fails), else dropped."""
        reason = f"the message is nested deeper than {MAX_DEPTH} levels"
        head = _HEAD.match(raw)
        if head is None:
            return self._unreadable(reason, None)
        kind, unique_id = int(head.group(1)), head.group(2)
        if kind == CALL:
            return FrameRejected(reason, self._error(unique_id, self.dialect.format_violation, reason))
        if kind in (CALLRESULT, CALLERROR):
            return self._response([kind, unique_id], kind, unique_id, reason)
        code = self.dialect.message_type_not_supported
        return FrameRejected(reason, None if code is None else self._error(unique_id, code, f"unknown message type id {kind}"))

    def _call(self, frame: list, unique_id: str) -> Event:
        d = self.dialect
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            reason = "a Call must be [2, id, action, {payload}]"
            return FrameRejected(reason, self._error(unique_id, d.rpc_framework_error or d.format_violation, reason))
        action, payload = frame[2], frame[3]
        if unique_id in self._to_answer:  # OCPP-J: a message id is unique; the first call's answer is on its way
            return FrameRejected(f"a second Call with message id {unique_id!r} while the first is being answered", None)
        if self.validate:
            try:
                ocpp_schema.validate(self.version, action, payload)
            except OCPPError as e:
                shown = action if len(action) <= 40 else action[:40] + "..."
                reason = f"{shown!r}: {e.description}"
                return FrameRejected(reason, self._error(unique_id, e.code, e.description or "", e.details))
        self._to_answer[unique_id] = action
        return CallReceived(unique_id, action, payload)

    def _response(self, frame: list, kind: int, unique_id: str, problem: str | None = None) -> Event:
        pending = self.pending
        if pending is None or pending.unique_id != unique_id:
            waiting = f"our call in flight is {pending.unique_id}" if pending else "no call of ours is in flight"
            return ResponseIgnored(unique_id, waiting)
        self.pending = None
        d = self.dialect
        if kind == CALLRESULT:
            payload = frame[2] if len(frame) > 2 else None
            if problem is not None:
                return ErrorReceived(unique_id, pending.action, d.format_violation,
                                     f"the CSMS's {pending.action} response: {problem}", None, {})
            if len(frame) != 3 or not isinstance(payload, dict):
                return ErrorReceived(unique_id, pending.action, d.format_violation,
                                     f"the CSMS's CallResult is not [3, id, {{payload}}]: payload {payload!r:.100}",
                                     None, payload if payload is not None else {})
            if self.validate:
                try:
                    ocpp_schema.validate(self.version, pending.action, payload, result=True)
                except OCPPError as e:
                    return ErrorReceived(unique_id, pending.action, d.code(e.code),
                                         f"the CSMS's {pending.action} response breaks the schema: {e.description}",
                                         None, payload)
            return ResultReceived(unique_id, pending.action, payload)
        if problem is not None:
            return ErrorReceived(unique_id, pending.action, "GenericError", f"the CSMS's CallError: {problem}")
        code = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "GenericError"
        description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
        details = frame[4] if len(frame) > 4 else None
        return ErrorReceived(unique_id, pending.action, code[:100], description[:MAX_DESCRIPTION * 4], details)


__all__ = [
    "DIALECTS", "OCPP16", "OCPP201", "CallInFlight", "CallReceived", "Dialect", "ErrorReceived", "Event",
    "FrameRejected", "InvalidResult", "PendingCall", "ResponseIgnored", "ResultReceived", "RpcConnection",
]
