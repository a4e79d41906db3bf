"""OCPP 1.6 answers to the station's own calls: is an answer usable?

The link may validate answers against the JSON schemas; these checks are what the station itself
relies on, and bound what a schema leaves open: an OCPP 1.6 ``integer`` is 32 bit (31 bit
resolution, 1 sign bit), so a transactionId of 2^63 is unusable even where the schema says only
"integer". Each function returns what is wrong, or None.
"""

from __future__ import annotations

from typing import Any

from station.core.clock import parse_iso

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
AUTHORIZATION_STATUS = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
REGISTRATION_STATUS = ("Accepted", "Pending", "Rejected")


def is_int32(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and INT32_MIN <= v <= INT32_MAX


def id_tag_info_problem(info: Any) -> str | None:
    if not isinstance(info, dict):
        return f"idTagInfo is not an object ({type(info).__name__})"
    if info.get("status") not in AUTHORIZATION_STATUS:
        return "idTagInfo.status is not an AuthorizationStatus"
    expiry = info.get("expiryDate")
    if expiry is not None:
        if not isinstance(expiry, str):
            return "idTagInfo.expiryDate is not a date-time"
        try:
            parse_iso(expiry)
        except (ValueError, TypeError, OverflowError):
            return "idTagInfo.expiryDate is not a date-time"
    parent = info.get("parentIdTag")
    if parent is not None and not (isinstance(parent, str) and len(parent) <= 20):
        return "idTagInfo.parentIdTag is not an IdToken"
    return None


def answer_problem(action: str, response: Any) -> str | None:
    """What makes the CSMS's answer to our ``action`` unusable, or None."""
    if not isinstance(response, dict):
        return "the answer is not an object"
    if action == "StartTransaction":
        if not is_int32(response.get("transactionId")):
            return f"transactionId {str(response.get('transactionId'))[:20]!r} is not a 32-bit integer"
        return id_tag_info_problem(response.get("idTagInfo"))
    if action == "StopTransaction" and "idTagInfo" in response:
        return id_tag_info_problem(response["idTagInfo"])
    if action == "Authorize":
        return id_tag_info_problem(response.get("idTagInfo"))
    return None
