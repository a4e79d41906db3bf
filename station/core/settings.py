"""Behaviour knobs of the station, independent of how an OCPP version names them.

The 1.6 adapter fills them from configuration keys, the 2.0.1 adapter from device-model variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.core.auth import AuthRules


@dataclass
class Settings:
    connection_timeout_s: float = 60.0
    stop_on_ev_side_disconnect: bool = True
    unlock_on_ev_side_disconnect: bool = True
    stop_on_invalid_id: bool = True
    max_energy_on_invalid_id_wh: int | None = None
    authorize_remote_tx_requests: bool = True
    auth: AuthRules = field(default_factory=AuthRules)
