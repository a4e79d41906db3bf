"""OCPP 2.0.1 authorization rules (Part 2 block C) as the shared engine's AuthRules.

The decision itself is version independent (station/core/auth.py, station/station.py); this module
reads the controllers that steer it:

- AuthCtrlr.Enabled false: no authorization at all, every token is accepted without asking (C01).
- IdToken type NoAuthorization: accepted locally, no Authorize is sent.
- AuthCtrlr.LocalPreAuthorize / LocalAuthorizeOffline / OfflineTxForUnknownIdEnabled: as in 1.6.
- AuthCacheCtrlr.Enabled, LifeTime (an entry not used for that long leaves the cache; its
  cacheExpiryDateTime, when the CSMS gave one, still applies) and DisablePostAuthorize; LocalAuthListCtrlr.Enabled and DisablePostAuthorize (a known entry that is
  not Accepted is refused without an Authorize).
- AuthCtrlr.DisableRemoteAuthorization: no Authorize is sent; the local list and the cache decide
  (a token they do not know is refused).
- AuthCacheCtrlr.Policy LRU: a cache entry used counts as recently used.
- AuthCtrlr.MasterPassGroupId: a token of that group never starts a transaction; presented, it
  stops every running one (stoppedReason MasterPass; this station has no display to choose one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.core.auth import AuthRules

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

# IdTokenEnumType values that need no authorization
UNCHECKED_TYPES = frozenset({"NoAuthorization"})

# the variables the rules are made of (the adapter re-reads them all when one changes)
VARIABLES = (
    ("AuthCtrlr", "Enabled"), ("AuthCtrlr", "LocalPreAuthorize"), ("AuthCtrlr", "LocalAuthorizeOffline"),
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"), ("AuthCtrlr", "MasterPassGroupId"),
    ("AuthCtrlr", "DisableRemoteAuthorization"),
    ("AuthCacheCtrlr", "Enabled"), ("AuthCacheCtrlr", "LifeTime"), ("AuthCacheCtrlr", "DisablePostAuthorize"),
    ("LocalAuthListCtrlr", "Enabled"), ("LocalAuthListCtrlr", "DisablePostAuthorize"),
)


def auth_rules(ad: Ocpp201Adapter) -> AuthRules:
    """The authorization rules the device model sets now."""
    lifetime = ad.integer("AuthCacheCtrlr", "LifeTime")
    return AuthRules(
        authorization_cache_enabled=ad.flag("AuthCacheCtrlr", "Enabled"),
        local_auth_list_enabled=ad.flag("LocalAuthListCtrlr", "Enabled"),
        local_pre_authorize=ad.flag("AuthCtrlr", "LocalPreAuthorize"),
        local_authorize_offline=ad.flag("AuthCtrlr", "LocalAuthorizeOffline"),
        allow_offline_tx_for_unknown_id=ad.flag("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
        enabled=ad.flag("AuthCtrlr", "Enabled"),
        unchecked_types=UNCHECKED_TYPES,
        cache_post_authorize=not ad.flag("AuthCacheCtrlr", "DisablePostAuthorize"),
        local_list_post_authorize=not ad.flag("LocalAuthListCtrlr", "DisablePostAuthorize"),
        cache_lifetime_s=float(lifetime) if lifetime > 0 else None,
        master_pass_group=ad.text("AuthCtrlr", "MasterPassGroupId") or None,
        ask_csms=not ad.flag("AuthCtrlr", "DisableRemoteAuthorization"),
    )
