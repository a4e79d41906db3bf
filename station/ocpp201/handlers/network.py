"""OCPP 2.0.1 network connection profiles: B09 SetNetworkProfile, B10 migration to a new CSMS with
fallback, and the security profile they carry (A05: upgraded only, with fallback).

A configuration slot (0-9) holds a NetworkConnectionProfile (ocppCsmsUrl, securityProfile,
messageTimeout, ...). Slot 0 is the station config's own (``csms_url``, ``security_profile``)
until the CSMS sets another; the slots the CSMS sets are kept in the store (namespace
``ocpp201_network``). ``OCPPCommCtrlr.NetworkConfigurationPriority`` says which slots to try, in
order: a new station (or one restarted by a Reset) starts with the first; after
``NetworkProfileConnectionAttempts`` failed attempts in a row it goes on with the next (and round
again), so a profile that does not work falls back to the one that did (B10.FR.03/.07).
``ActiveNetworkProfile`` names the slot in use.

Security profile (``SecurityCtrlr.SecurityProfile``): the config's, or, if higher, the one a
connection with a slot of a higher profile confirmed (persisted). Slots of a lower profile are
never used again, and once the higher profile has connected they leave
NetworkConfigurationPriority (A05). A slot of a higher profile is accepted (SetNetworkProfile, and
NetworkConfigurationPriority naming it) only when what it needs is there: 2 a CSMS root
(installed or ``station.ca_file``), 3 also a charging station certificate (A05.FR.02/.03); a lower
one is Rejected (A05, no downgrade). The new priority is used from the next connection, which
the CSMS brings about with a Reset (B10.FR.04).

Reconnecting (OCPP-J): the waits between attempts follow OCPPCommCtrlr.RetryBackOffWaitMinimum,
RetryBackOffRandomRange and RetryBackOffRepeatTimes (``BackOffLink``, the link the adapter makes).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from station import logsafe
from station.link import Link, check_url
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("NetworkProfiles")

NS = "ocpp201_network"
SLOTS = range(0, 10)  # the configuration slots (NetworkConfigurationPriority's members are 0-9)
CONFIG_SLOT = 0  # the station config's profile, unless the CSMS set this slot
MAX_RETRY_WAIT_S = 3_600.0  # no reconnection wait is longer, whatever RetryBackOff* say
MIN_RETRY_WAIT_S = 1.0  # nor shorter (RetryBackOffWaitMinimum 0 would make a busy loop of attempts)


class BackOffLink(Link):
    """The link with the OCPP 2.0.1 reconnection back-off (OCPP-J "Reconnecting"): the first wait
    is RetryBackOffWaitMinimum plus a random part of at most RetryBackOffRandomRange seconds, each
    further one twice the previous, RetryBackOffRepeatTimes times, then the last one again. When
    the back-off starts over is the link's rule (the CSMS serves the station again)."""

    def __init__(self, *, delay: Callable[[int], float], **kw: Any) -> None:
        super().__init__(**kw)
        self._delay = delay

    def _next_delay(self) -> float:
        self._attempt += 1
        return self._delay(self._attempt)


class NetworkProfiles:
    """The slots, the one in use, its attempts, and the confirmed security profile."""

    link_type = BackOffLink

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        self.slots: dict[int, dict] = self._stored_slots()
        self.active: int | None = None  # the slot the link is configured for (chosen at the first use)
        self.failures = 0  # failed attempts in a row with the active slot
        self.link: Link | None = None
        self.register_again = False  # the next connection has new credentials: BootNotification again
        self._first_wait: float | None = None  # the first reconnection wait of the present run of failures
        stored_profile = ad.store.get(NS, "security_profile", 0)
        self.confirmed = max(ad.cfg.security_profile, int(stored_profile) if str(stored_profile).isdigit() else 0)
        ad.dm.set_actual("SecurityCtrlr", "SecurityProfile", self.confirmed)
        ad.dm.add_check("OCPPCommCtrlr", "NetworkConfigurationPriority", self.priority_problem)
        ad.dm.provide("OCPPCommCtrlr", "ActiveNetworkProfile", lambda: self.slot())
        ad.dm.subscribe("SecurityCtrlr", "BasicAuthPassword", self._password_changed)

    def _stored_slots(self) -> dict[int, dict]:
        """The slots the CSMS set, as stored; an entry that is not a usable profile is left out (logged)."""
        try:
            stored = json.loads(self.ad.store.get(NS, "slots", "{}"))
            items = stored.items()
        except (ValueError, TypeError, AttributeError):
            self.ad.log.error("stored network connection profiles unreadable: only the station config's is used")
            return {}
        slots = {}
        for k, v in items:
            if (str(k).isdigit() and int(k) in SLOTS and isinstance(v, dict) and isinstance(v.get("ocppCsmsUrl"), str)
                    and v.get("securityProfile") in (0, 1, 2, 3)):
                slots[int(k)] = v
            else:
                self.ad.log.error("stored network connection profile %s unusable: left out", logsafe.text(k, 20))
        return slots

    # -- the profiles ----------------------------------------------------------------------------
    def config_profile(self) -> dict:
        cfg = self.ad.cfg
        return {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": cfg.csms_url,
                "messageTimeout": 30, "securityProfile": cfg.security_profile, "ocppInterface": "Wired0"}

    def profile_of(self, slot: int) -> dict | None:
        if slot in self.slots:
            return self.slots[slot]
        return self.config_profile() if slot == CONFIG_SLOT else None

    def security_profile(self) -> int:
        """The confirmed security profile (kept in the store): only ever goes up."""
        return self.confirmed

    def priority(self) -> list[int]:
        out = []
        for member in self.ad.members("OCPPCommCtrlr", "NetworkConfigurationPriority"):
            if member.isdigit() and int(member) not in out:
                out.append(int(member))
        return out

    def candidates(self) -> list[int]:
        """The slots to try, in priority order: configured, and of no lower security profile."""
        floor = self.security_profile()
        found = [s for s in self.priority() if (p := self.profile_of(s)) is not None and int(p["securityProfile"]) >= floor]
        return found or [CONFIG_SLOT]

    def slot(self) -> int:
        """The slot in use: the first candidate when the station starts (after the --ocpp-config
        values), then the next one after failed attempts. A new priority applies from the next start."""
        if self.active is None:
            self.active = self.candidates()[0]
        return self.active

    def current(self) -> dict:
        return self.profile_of(self.slot()) or self.config_profile()

    # -- what the link needs -------------------------------------------------------------------------
    def url(self) -> str:
        return str(self.current()["ocppCsmsUrl"]).rstrip("/") + "/" + self.ad.cfg.id

    def basic_auth(self) -> tuple[str, str] | None:
        """Profiles 1 and 2: (station id, BasicAuthPassword)."""
        profile = int(self.current()["securityProfile"])
        if profile not in (1, 2):
            return None
        password = self.ad.text("SecurityCtrlr", "BasicAuthPassword")
        if not password:
            self.ad.log.warning("security profile %d needs SecurityCtrlr.BasicAuthPassword; connecting without", profile)
            return None
        return (self.ad.cfg.id, password)

    def ssl_context(self) -> Any:
        security = self.ad.services.get("security")
        if security is None:
            return None
        return security.ssl_context(self.url(), int(self.current()["securityProfile"]))

    def retry_delay(self, attempt: int) -> float:
        """The wait before reconnection attempt ``attempt`` (1: the first after a loss)."""
        if attempt <= 1 or self._first_wait is None:
            self._first_wait = (max(0, self.ad.integer("OCPPCommCtrlr", "RetryBackOffWaitMinimum"))
                                + random.uniform(0, max(0, self.ad.integer("OCPPCommCtrlr", "RetryBackOffRandomRange"))))
        doublings = min(attempt - 1, max(0, self.ad.integer("OCPPCommCtrlr", "RetryBackOffRepeatTimes")))
        return max(MIN_RETRY_WAIT_S, min(MAX_RETRY_WAIT_S, self._first_wait * 2 ** doublings))

    def attach(self, link: Link) -> None:
        """The adapter made a link: keep it configured for the slot in use."""
        self.link = link
        self._message_timeout()
        if self.candidates() == [CONFIG_SLOT] and CONFIG_SLOT not in self.priority():
            self.ad.log.error("no network connection profile of security profile %d or higher in "
                              "NetworkConfigurationPriority: using the station config's", self.security_profile())

    def configure(self) -> None:
        """The link's next connection uses the slot in use now."""
        link = self.link
        if link is None:
            return
        link.url = self.url()
        link.ssl = self.ssl_context()
        link.set_basic_auth(self.basic_auth())
        self._message_timeout()

    def _message_timeout(self) -> None:
        """The profile's messageTimeout: the link's answer timeout and OCPPCommCtrlr.MessageTimeout."""
        timeout = int(self.current().get("messageTimeout") or 0)
        if timeout <= 0 or self.link is None:
            return
        self.link.call_timeout = float(timeout)
        try:
            self.ad.dm.set_actual("OCPPCommCtrlr", "MessageTimeout", timeout, instance="Default")
        except (KeyError, ValueError) as e:
            self.ad.log.warning("OCPPCommCtrlr.MessageTimeout %d not kept: %s", timeout, e)

    def certificates_changed(self) -> None:
        """Installed certificates changed: the next TLS connection uses them."""
        if self.link is not None and self.link.url.lower().startswith("wss://"):
            self.link.ssl = self.ssl_context()

    # -- connection events ---------------------------------------------------------------------------
    def attempt_failed(self, e: BaseException) -> None:
        """A failed attempt with the slot in use; after NetworkProfileConnectionAttempts in a row,
        the next slot of NetworkConfigurationPriority."""
        self.failures += 1
        attempts = max(1, self.ad.integer("OCPPCommCtrlr", "NetworkProfileConnectionAttempts"))
        candidates, failed = self.candidates(), self.slot()
        if self.failures < attempts or candidates == [failed]:
            return
        after = candidates.index(failed) if failed in candidates else -1
        self.active = candidates[(after + 1) % len(candidates)]
        self.failures = 0
        self.ad.log.error("network connection profile %d failed to connect %d times: trying profile %d",
                          failed, attempts, self.slot())
        self.configure()

    def connected(self) -> bool:
        """A connection with the slot in use opened: a higher security profile is confirmed, and
        the slots of lower profiles leave NetworkConfigurationPriority. True: the station connected
        with new credentials (password, certificate) and registers again (BootNotification)."""
        self.failures = 0
        again, self.register_again = self.register_again, False
        slot, profile = self.slot(), int(self.current()["securityProfile"])
        previous = self.security_profile()
        if profile <= previous:
            return again
        self.confirmed = profile
        self.ad.store.put(NS, "security_profile", profile)
        self.ad.dm.set_actual("SecurityCtrlr", "SecurityProfile", profile)
        kept = [s for s in self.priority() if (p := self.profile_of(s)) is not None and int(p["securityProfile"]) >= profile]
        self.ad.dm.set_actual("OCPPCommCtrlr", "NetworkConfigurationPriority", ",".join(str(s) for s in kept or [slot]))
        self.ad.log.warning("security profile %d in use (was %d), network connection profile %d", profile, previous, slot)
        security = self.ad.services.get("security")
        if security is not None:
            security.event("ReconfigurationOfSecurityParameters", f"SecurityProfile {previous} -> {profile}")
        return again

    def _password_changed(self, ck: tuple, vk: tuple, value: Any) -> None:
        """A01: a new BasicAuthPassword; with profile 1 or 2 the station connects again with it
        (once the SetVariables answer is out)."""
        link = self.link
        if link is None:
            return  # the station's own configuration (--ocpp-config) before it connects
        security = self.ad.services.get("security")
        if security is not None:
            security.event("ReconfigurationOfSecurityParameters", "SecurityCtrlr.BasicAuthPassword changed")
        credentials = self.basic_auth()
        if credentials is None:
            return
        link.set_basic_auth(credentials)
        self.register_again = True
        link.reconnect("BasicAuthPassword changed: connecting with the new password")

    # -- checks ------------------------------------------------------------------------------------------
    def upgrade_problem(self, profile: int) -> str | None:
        """What a connection with ``profile`` needs and does not have (None: nothing)."""
        current = self.security_profile()
        if profile < current:
            return f"securityProfile {profile} is lower than the one in use ({current}): no downgrade"
        if profile <= current:
            return None
        security = self.ad.services.get("security")
        if profile >= 2 and (security is None or not security.csms_root_available()):
            return f"securityProfile {profile} needs a CSMSRootCertificate"
        if profile == 3 and (security is None or not security.certs.has_client_certificate()):
            return "securityProfile 3 needs a ChargingStationCertificate"
        if profile in (1, 2) and not self.ad.text("SecurityCtrlr", "BasicAuthPassword"):
            return f"securityProfile {profile} needs SecurityCtrlr.BasicAuthPassword"
        return None

    def priority_problem(self, value: str) -> str | None:
        """NetworkConfigurationPriority: every slot configured, and usable if its profile is higher."""
        for member in value.split(","):
            member = member.strip()
            if not member.isdigit():
                continue  # the definition's own check says so
            p = self.profile_of(int(member))
            if p is None:
                return f"configuration slot {member} has no network connection profile"
            profile = int(p["securityProfile"])
            if profile > self.security_profile():
                why = self.upgrade_problem(profile)
                if why:
                    return f"slot {member}: {why}"
        return None

    def set_profile(self, slot: int, data: dict) -> str | None:
        """SetNetworkProfile: None (stored) or why it is Rejected."""
        if slot not in SLOTS:
            return f"configurationSlot {slot} does not exist (0-{SLOTS[-1]})"
        if slot == self.slot() and self.link is not None and self.link.is_connected:
            return f"configurationSlot {slot} is the one in use"
        if data.get("ocppVersion") != "OCPP20":
            return f"ocppVersion {data.get('ocppVersion')} is not spoken (OCPP20 only)"
        if data.get("ocppTransport") != "JSON":
            return "ocppTransport must be JSON"
        profile = int(data["securityProfile"])
        if profile not in (0, 1, 2, 3):
            return f"securityProfile {profile} does not exist"
        url = str(data["ocppCsmsUrl"])
        try:
            check_url(url.rstrip("/") + "/" + self.ad.cfg.id)
        except Exception as e:  # noqa: BLE001 - InvalidUrl: its text says why
            return str(e)
        scheme = urlparse(url).scheme.lower()
        if (profile >= 2) != (scheme == "wss"):
            return f"securityProfile {profile} needs a {'wss' if profile >= 2 else 'ws'}:// ocppCsmsUrl"
        why = self.upgrade_problem(profile)
        if why:
            return why
        self.slots[slot] = dict(data)
        self.ad.store.put(NS, "slots", json.dumps({str(k): v for k, v in sorted(self.slots.items())}))
        return None


def service(ad: Ocpp201Adapter) -> NetworkProfiles:
    return NetworkProfiles(ad)


def _svc(ad: Ocpp201Adapter) -> NetworkProfiles:
    return ad.services["network"]


@routes.on("SetNetworkProfile")
async def set_network_profile(ad: Ocpp201Adapter, p: dict) -> dict:
    slot = int(p["configurationSlot"])
    why = _svc(ad).set_profile(slot, p["connectionData"])
    if why:
        ad.log.warning("SetNetworkProfile slot %d rejected: %s", slot, logsafe.text(why, 300))
        reason = "NoSecurityDowngrade" if "downgrade" in why else "InvalidConfSlot" if "configurationSlot" in why else "InvalidNetworkConf"
        return {"status": "Rejected", "statusInfo": {"reasonCode": reason, "additionalInfo": why[:512]}}
    ad.log.info("SetNetworkProfile: network connection profile %d stored (%s, security profile %s)", slot,
                logsafe.text(p["connectionData"]["ocppCsmsUrl"], 200), p["connectionData"]["securityProfile"])
    return {"status": "Accepted"}
