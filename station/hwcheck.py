"""`station hw check`: open every device of a config, read what can be read, say what answers.

For commissioning a board before the station goes on line. Nothing is switched: the contactor
stays open, the lock does not move, the pilot stays at steady +12 V (state A/B readable). With
``--wait-card S`` the check waits up to S seconds for a card at each EVSE's reader.

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
                     say: Callable[[str], None]) -> bool:
    faults: list[Fault] = []
    tokens: list[IdToken] = []
    hw.on_fault(faults.append)
    if hw.reader is not None:
        hw.reader.on_token(tokens.append)
    await hw.start()
    ok = True

    def line(device: str, good: bool, text: str) -> None:
        nonlocal ok
        ok &= good
        say(f"  {device:<7}{kinds.get(device, 'sim'):<9}{'ok  ' if good else 'FAIL'}  {text}")

    try:
        await asyncio.sleep(SETTLE_S)
        try:
            line("meter", True, describe_reading(await hw.meter.read()))
        except HalError as e:
            line("meter", False, f"{e.error_code}: {e}")
        pilot_faults = [f for f in faults if f.active and "pilot" in f.info.lower()]
        if pilot_faults:
            line("pilot", False, f"{pilot_faults[0].error_code}: {pilot_faults[0].info}")
        else:
            volts = getattr(hw.pilot, "last_cp_volts", None)
            extra = f" ({volts:+.1f} V)" if volts is not None else ""
            line("pilot", True, f"state {hw.pilot.state}{extra}")
        relay_faults = [f for f in faults if f.active and f.error_code == "PowerSwitchFailure"]
        if relay_faults:
            line("relay", False, f"PowerSwitchFailure: {relay_faults[0].info}")
        else:
            has_feedback = getattr(hw.relay, "_feedback", None) is not None
            line("relay", True, "open" + (" (aux contact agrees)" if has_feedback else " (no feedback fitted)"))
        line("lock", True, "locked" if hw.lock.locked else "unlocked")
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
    built: list[tuple[int, EvseHardware, dict[str, str]]] = []
    try:
        for e in cfg.evses:
            devices = {} if cfg.simulated else e.devices
            kinds = {d: s.get("kind", "sim") for d, s in devices.items()}
            built.append((e.id, build_evse(e.id, devices, cfg.gpio, shared=shared), kinds))
    except (HalError, ValueError) as exc:
        say(f"station: hardware: {exc}")
        for _, hw, _ in built:
            await hw.close()
        return 3
    ok = True
    say(f"station {cfg.id}: {len(built)} EVSE(s), gpio backend {cfg.gpio}; nothing is switched")
    for evse_id, hw, kinds in built:
        say(f"EVSE {evse_id}")
        ok &= await check_evse(evse_id, hw, kinds, wait_card_s, say)
    say("all devices answer" if ok else "some devices do not answer: see FAIL above")
    return 0 if ok else 1
