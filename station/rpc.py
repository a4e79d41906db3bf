"""OCPP-J remote procedure calls without I/O: frames in, events out; our messages out as text.

Like the websockets library's sans-I/O ``protocol.py`` (or h11), :class:`RpcConnection` never
touches a socket or a loop. The link feeds it every text frame the CSMS sent
(:meth:`RpcConnection.receive`) and gets one event back; it asks it for the text of our own
Call, CallResult and CallError frames. What the connection keeps:

- the validation of incoming frames: JSON, the ``[type, id, ...]`` array, the Call shape, the
  payload against the version's JSON schema (``station.ocpp_schema``); a frame that breaks a rule
  becomes :class:`FrameRejected` carrying the CallError to send back (or none, where OCPP-J has
  no message id to answer to);
- one outgoing Call in flight (:meth:`call` refuses a second one), matched to its CallResult or
  CallError by message id; a response to no call of ours is :class:`ResponseIgnored`;
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
from dataclasses import dataclass
from typing import Any

from ocpp.exceptions import OCPPError

from station import ocpp_schema

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_DESCRIPTION = 255  # OCPP-J: errorDescription is at most 255 characters


@dataclass(frozen=True)
class Dialect:
    """The CallError codes of one OCPP-J version and how the other version's spellings map to them."""

    version: str
    codes: frozenset[str]
    format_violation: str
    occurrence_violation: str
    message_type_not_supported: str
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
    message_type_not_supported="FormationViolation",  # 1.6 has no own code: the frame is malformed
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
    """The CallResult of our call. ``problem`` names a schema violation of the payload (it is passed on)."""

    unique_id: str
    action: str
    payload: dict
    problem: str | None = None


@dataclass(frozen=True)
class ErrorReceived:
    """The CallError answering our call (or a CallResult that is no JSON object, said as one)."""

    unique_id: str
    action: str
    code: str
    description: str
    details: Any = None


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
            ocpp_schema.validate(self.version, action, payload)
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
                ocpp_schema.validate(self.version, action, payload, result=True)
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
        """One websocket message of the CSMS -> the event it is."""
        d = self.dialect
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._unreadable("the message is not valid JSON", None)
        if not isinstance(frame, list) or not frame:
            return self._unreadable("the message is not an OCPP-J array [type, id, ...]", None)
        kind = frame[0]
        unique_id = frame[1] if len(frame) > 1 else None
        if not isinstance(unique_id, str) or not unique_id:
            return self._unreadable("the message has no string message id", None)
        if isinstance(kind, bool) or kind not in (CALL, CALLRESULT, CALLERROR):
            reason = f"unknown message type id {kind!r}"
            return FrameRejected(reason, self._error(unique_id, d.message_type_not_supported, reason))
        if kind == CALL:
            return self._call(frame, unique_id)
        return self._response(frame, kind, unique_id)

    def _unreadable(self, reason: str, unique_id: str | None) -> FrameRejected:
        code = self.dialect.rpc_framework_error
        reply = None if code is None else self._error(unique_id or "-1", code, reason)
        return FrameRejected(reason, reply)

    def _call(self, frame: list, unique_id: str) -> Event:
        d = self.dialect
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            reason = "a Call must be [2, id, action, {payload}]"
            return FrameRejected(reason, self._error(unique_id, d.rpc_framework_error or d.format_violation, reason))
        action, payload = frame[2], frame[3]
        if self.validate:
            try:
                ocpp_schema.validate(self.version, action, payload)
            except OCPPError as e:
                reason = f"{action}: {e.description}"
                return FrameRejected(reason, self._error(unique_id, e.code, e.description or "", e.details))
        self._to_answer[unique_id] = action
        return CallReceived(unique_id, action, payload)

    def _response(self, frame: list, kind: int, unique_id: str) -> Event:
        pending = self.pending
        if pending is None or pending.unique_id != unique_id:
            waiting = f"our call in flight is {pending.unique_id}" if pending else "no call of ours is in flight"
            return ResponseIgnored(unique_id, waiting)
        self.pending = None
        if kind == CALLRESULT:
            payload = frame[2] if len(frame) > 2 else None
            if not isinstance(payload, dict):
                return ErrorReceived(unique_id, pending.action, self.dialect.format_violation,
                                     f"the CSMS's CallResult payload is not a JSON object: {payload!r:.100}")
            problem = None
            if self.validate:
                try:
                    ocpp_schema.validate(self.version, pending.action, payload, result=True)
                except OCPPError as e:
                    problem = f"{e.code}: {e.description}"
            return ResultReceived(unique_id, pending.action, payload, problem)
        code = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "GenericError"
        description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
        details = frame[4] if len(frame) > 4 else None
        return ErrorReceived(unique_id, pending.action, code, description, details)


__all__ = [
    "DIALECTS", "OCPP16", "OCPP201", "CallInFlight", "CallReceived", "Dialect", "ErrorReceived", "Event",
    "FrameRejected", "InvalidResult", "PendingCall", "ResponseIgnored", "ResultReceived", "RpcConnection",
]
