"""`station hw check`: open every device of a config, read what can be read, say what answers.

For commissioning a board before the station goes on line. Nothing is switched: the contactor
stays open, the lock does not move, the pilot stays at steady +12 V (state A/B readable). An EVSE
with several connectors ([[evse.connector]]) has its pilot and lock checked per connector
(``connector 2 pilot``). With ``--wait-card S`` the check waits up to S seconds for a card at each
EVSE's reader.

Exit codes: 0 every device answered, 1 at least one did not, 2 the config is wrong, 3 a device
could not be opened at all (the message names EVSE, device and port or line).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hal.board import EvseHardware, build_evse
from hal.types import Fault, HalError, IdToken, MeterReading
from station.config import StationConfig

SETTLE_S = 0.6  # time for pilots (debouncing) and readers to report after start


def describe_reading(r: MeterReading) -> str:
    parts = [f"{r.energy_import_wh / 1000:.3f} kWh import"]
    if r.energy_export_wh is not None:
        parts.append(f"{r.energy_export_wh / 1000:.3f} kWh export")
    if r.power_w is not None:
        parts.append(f"{r.power_w:.0f} W")
    if r.voltage_v:
        parts.append("/".join(f"{v:.1f}" for v in r.voltage_v) + " V")
    if r.current_a:
        parts.append("/".join(f"{a:.2f}" for a in r.current_a) + " A")
    if r.frequency_hz is not None:
        parts.append(f"{r.frequency_hz:.2f} Hz")
    return ", ".join(parts)


async def check_evse(evse_id: int, hw: EvseHardware, kinds: dict[str, str], wait_card_s: float,
                     say: Callable[[str], None], connector_kinds: list[dict[str, str]] | None = None) -> bool:
    """Check one EVSE's devices; ``connector_kinds``: per connector (from 1) the backends of its own
    pilot and lock (those it does not name are the EVSE's)."""
    faults: list[Fault] = []
    tokens: list[IdToken] = []
    hw.on_fault(faults.append)
    if hw.reader is not None:
        hw.reader.on_token(tokens.append)
    await hw.start()
    ok = True

    many = len(hw.connectors) > 1

    def line(device: str, good: bool, text: str, connector: int = 0) -> None:
        nonlocal ok
        ok &= good
        kind = kinds.get(device, "sim")
        if connector and connector_kinds and connector <= len(connector_kinds):
            kind = connector_kinds[connector - 1].get(device, kind)
        name = f"connector {connector} {device}" if connector and many else device
        say(f"  {name:<{18 if many else 7}}{kind:<9}{'ok  ' if good else 'FAIL'}  {text}")

    def of(n: int, f: Fault) -> bool:
        """Does fault ``f`` concern connector ``n`` (its own devices, or the whole EVSE)?"""
        return not many or getattr(f, "connector_id", 0) in (0, n)

    try:
        await asyncio.sleep(SETTLE_S)
        try:
            line("meter", True, describe_reading(await hw.meter.read()))
        except HalError as e:
            line("meter", False, f"{e.error_code}: {e}")
        for n, ch in hw.connectors.items():
            pilot_faults = [f for f in faults if f.active and "pilot" in f.info.lower() and of(n, f)]
            if pilot_faults:
                line("pilot", False, f"{pilot_faults[0].error_code}: {pilot_faults[0].info}", n)
            else:
                volts = getattr(ch.pilot, "last_cp_volts", None)
                extra = f" ({volts:+.1f} V)" if volts is not None else ""
                line("pilot", True, f"state {ch.pilot.state}{extra}", n)
        relay_faults = [f for f in faults if f.active and f.error_code == "PowerSwitchFailure"]
        if relay_faults:
            line("relay", False, f"PowerSwitchFailure: {relay_faults[0].info}")
        else:
            has_feedback = getattr(hw.relay, "_feedback", None) is not None
            line("relay", True, "open" + (" (aux contact agrees)" if has_feedback else " (no feedback fitted)"))
        for n, ch in hw.connectors.items():
            lock_faults = [f for f in faults if f.active and f.error_code == "ConnectorLockFailure" and of(n, f)]
            if lock_faults:
                line("lock", False, f"ConnectorLockFailure: {lock_faults[0].info}", n)
            else:
                line("lock", True, "locked" if ch.lock.locked else "unlocked", n)
        if hw.reader is None:
            line("reader", True, "none fitted")
        else:
            reader_faults = [f for f in faults if f.active and f.error_code == "ReaderFailure"]
            if reader_faults:
                line("reader", False, f"ReaderFailure: {reader_faults[0].info}")
            else:
                if wait_card_s > 0 and not tokens:
                    say(f"  reader: present a card at EVSE {evse_id} (waiting {wait_card_s:g} s)")
                    for _ in range(int(wait_card_s / 0.1)):
                        if tokens:
                            break
                        await asyncio.sleep(0.1)
                if tokens:
                    line("reader", True, f"card {tokens[0].id_token} ({tokens[0].type})")
                else:
                    line("reader", wait_card_s <= 0, "answers; no card presented")
    finally:
        await hw.close()
    return ok


async def run_check(cfg: StationConfig, wait_card_s: float, say: Callable[[str], None] = print) -> int:
    shared: dict = {}
    built: list[tuple[int, EvseHardware, dict[str, str], list[dict[str, str]]]] = []
    try:
        for e in cfg.evses:
            devices = {} if cfg.simulated else e.devices
            kinds = {d: s.get("kind", "sim") for d, s in devices.items()}
            own = [{} if cfg.simulated else c.devices for c in e.connectors]
            per_connector = [{d: s.get("kind", "sim") for d, s in c.items()} for c in own]
            hw = build_evse(e.id, devices, cfg.gpio, shared=shared, phases=e.phases, connectors=own or None)
            built.append((e.id, hw, kinds, per_connector))
    except (HalError, ValueError) as exc:
        say(f"station: hardware: {exc}")
        for _, hw, _, _ in built:
            await hw.close()
        return 3
    ok = True
    say(f"station {cfg.id}: {len(built)} EVSE(s), gpio backend {cfg.gpio}; nothing is switched")
    for evse_id, hw, kinds, per_connector in built:
        say(f"EVSE {evse_id}")
        ok &= await check_evse(evse_id, hw, kinds, wait_card_s, say, per_connector)
    say("all devices answer" if ok else "some devices do not answer: see FAIL above")
    return 0 if ok else 1
