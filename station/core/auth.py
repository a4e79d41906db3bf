"""Authorization decisions: authorization cache, local list, and the offline / pre-authorize rules.

The decision is pure: given what we know locally, whether we are online and the configured rules,
say whether to accept now, reject now, or ask the CSMS. Who sends the Authorize is the adapter's job.

The rules serve both versions (1.6 section 3.5; 2.0.1 use cases C01-C16): the extra ones of 2.0.1
keep their 1.6 meaning by default — authorization switched off (AuthCtrlr.Enabled false) or a
token type that needs none (NoAuthorization) is accepted without asking; a known entry that is not
valid is asked about again online ("post-authorize") unless DisablePostAuthorize says otherwise;
a cache entry not used for ``cache_lifetime_s`` has left the cache (it is unknown); a token whose group
is the master pass group never starts a transaction (the session says what it does instead).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from station.core.clock import parse_iso

# -- idTags are case-insensitive ---------------------------------------------------------------------
# An idTag is a CiString (OCPP 1.6 section 4: "case insensitive string"; OCPP 2.0.1's idToken is a
# CiString36): "04A1B2" and "04a1b2" are the same card. Every comparison of idTags (the cache, the
# local list and its updates, reservations and their parentIdTag, stopping with the same card) goes
# through id_tag_key; the store keys them the same way (COLLATE NOCASE, which folds ASCII letters
# only, as id_tag_key does: memory and disk always agree).
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def id_tag_key(id_tag: str) -> str:
    """The form under which an idTag is compared: its ASCII letters in lower case."""
    return id_tag.translate(_ASCII_FOLD)


def same_id_tag(a: str | None, b: str | None) -> bool:
    """Two idTags (or parentIdTags) name the same card or group; None or "" matches nothing."""
    return bool(a) and bool(b) and id_tag_key(a) == id_tag_key(b)  # type: ignore[arg-type]


V = TypeVar("V")


class IdTagMap(MutableMapping[str, V]):
    """idTag -> value, found whatever the case of the idTag asked for; iterating gives each idTag
    as it was last written."""

    def __init__(self, items: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        self._d: dict[str, tuple[str, V]] = {}
        self.update(items)

    def __getitem__(self, id_tag: str) -> V:
        return self._d[id_tag_key(id_tag)][1]

    def __setitem__(self, id_tag: str, value: V) -> None:
        self._d[id_tag_key(id_tag)] = (id_tag, value)

    def __delitem__(self, id_tag: str) -> None:
        del self._d[id_tag_key(id_tag)]

    def __contains__(self, id_tag: object) -> bool:
        return isinstance(id_tag, str) and id_tag_key(id_tag) in self._d

    def __iter__(self) -> Iterator[str]:
        return (tag for tag, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"IdTagMap({dict(self.items())!r})"


@dataclass(frozen=True)
class IdTagInfo:
    status: str  # Accepted | Blocked | Expired | Invalid | ConcurrentTx
    expiry_date: str | None = None
    parent_id_tag: str | None = None
    last_used: str | None = None  # a cache entry: when last written or used (its lifetime counts from it)

    @classmethod
    def from_ocpp(cls, d: dict) -> IdTagInfo:
        return cls(d.get("status", "Invalid"), d.get("expiryDate"), d.get("parentIdTag"))

    def to_ocpp(self) -> dict:
        out: dict = {"status": self.status}
        if self.expiry_date:
            out["expiryDate"] = self.expiry_date
        if self.parent_id_tag:
            out["parentIdTag"] = self.parent_id_tag
        return out

    def valid_at(self, now: datetime) -> bool:
        if self.status != "Accepted":
            return False
        if self.expiry_date:
            try:
                return parse_iso(self.expiry_date) > now
            except ValueError:
                return False
        return True


@dataclass(frozen=True)
class AuthRules:
    authorization_cache_enabled: bool = True
    local_auth_list_enabled: bool = True
    local_pre_authorize: bool = False
    local_authorize_offline: bool = True
    allow_offline_tx_for_unknown_id: bool = False
    enabled: bool = True  # False: every token is accepted without asking (2.0.1 AuthCtrlr.Enabled)
    unchecked_types: frozenset[str] = frozenset()  # token types accepted without asking (NoAuthorization)
    cache_post_authorize: bool = True  # a cache entry that is not valid: ask the CSMS (else reject)
    local_list_post_authorize: bool = True  # the same for a local list entry
    cache_lifetime_s: float | None = None  # a cache entry unused this long is gone (None: kept)
    master_pass_group: str | None = None  # tokens of this group stop transactions, never start one
    ask_csms: bool = True  # False: the CSMS is never asked; only the local list and the cache decide


class Verdict(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    ASK_CSMS = "ask"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    info: IdTagInfo | None = None
    source: str = ""  # local_list | cache | offline_unknown | csms


def _outlived(info: IdTagInfo, rules: AuthRules, now: datetime) -> bool:
    """A cache entry not used within the cache's lifetime (2.0.1 AuthCacheCtrlr.LifeTime)."""
    if not rules.cache_lifetime_s or not info.last_used:
        return False
    try:
        return (now - parse_iso(info.last_used)).total_seconds() >= rules.cache_lifetime_s
    except ValueError:
        return False


def decide(
    id_tag: str,
    online: bool,
    rules: AuthRules,
    local_list: Mapping[str, IdTagInfo],
    cache: Mapping[str, IdTagInfo],
    now: datetime,
    token_type: str | None = None,
) -> Decision:
    """What to do with an id tag presented locally (OCPP 1.6 sections 3.5 and 5.x; 2.0.1 C01-C16).
    The station's list and cache are :class:`IdTagMap`: found whatever the case."""
    if not rules.enabled or (token_type is not None and token_type in rules.unchecked_types):
        return Decision(Verdict.ACCEPT, IdTagInfo("Accepted"), "no_authorization")
    known: IdTagInfo | None = None
    source = ""
    if rules.local_auth_list_enabled and id_tag in local_list:
        known, source = local_list[id_tag], "local_list"
    elif rules.authorization_cache_enabled and id_tag in cache and not _outlived(cache[id_tag], rules, now):
        known, source = cache[id_tag], "cache"
    if online and not rules.ask_csms:
        # 2.0.1 AuthCtrlr.DisableRemoteAuthorization: what the station knows decides, nothing else
        if known is not None and known.valid_at(now):
            return Decision(Verdict.ACCEPT, known, source)
        return Decision(Verdict.REJECT, known or IdTagInfo("Invalid"), source or "unknown")
    if online:
        if rules.local_pre_authorize and known is not None:
            if known.valid_at(now):
                return Decision(Verdict.ACCEPT, known, source)
            post = rules.local_list_post_authorize if source == "local_list" else rules.cache_post_authorize
            if not post:
                # 2.0.1 DisablePostAuthorize: a known entry that is not valid is refused without asking
                return Decision(Verdict.REJECT, known, source)
        return Decision(Verdict.ASK_CSMS)
    # offline
    if known is not None:
        if not known.valid_at(now):
            # 3.5.4: a status other than Accepted, or expired by the passage of time: MUST be rejected
            return Decision(Verdict.REJECT, known, source)
        if rules.local_authorize_offline:
            return Decision(Verdict.ACCEPT, known, source)
        # valid, but LocalAuthorizeOffline forbids using it: it "cannot be explicitly authorized by
        # Local Authorization List or Authorization Cache entries", so it is treated as unknown (3.5.4)
    if rules.allow_offline_tx_for_unknown_id:
        return Decision(Verdict.ACCEPT, IdTagInfo("Accepted"), "offline_unknown")
    return Decision(Verdict.REJECT, IdTagInfo("Invalid"), "unknown")


def list_conflict(
    id_tag: str, answer: IdTagInfo, rules: AuthRules, local_list: Mapping[str, IdTagInfo]
) -> IdTagInfo | None:
    """The local list's entry for ``id_tag`` when the CSMS's ``answer`` about it (Authorize,
    StartTransaction) contradicts it: another status. None when the list is not in use, does not
    hold the idTag, or agrees. The list itself is never changed by an answer (1.6 3.5.2: only
    SendLocalList changes it); the station tells the CSMS instead (1.6: LocalListConflict)."""
    if not rules.local_auth_list_enabled:
        return None
    entry = local_list.get(id_tag)
    if entry is None or entry.status == answer.status:
        return None
    return entry

