"""The plain-Python baseline of bench/fleet.py: N ``ocpp`` library ChargePoints (mobilityhouse
ocpp, OCPP 1.6) in one asyncio process, each on its own websocket, the way a CSMS team writes a
quick load script. Each one boots, reports its connector, sends heartbeats, and runs sessions like
the fleet's default driver (Authorize, StartTransaction, MeterValues every 30 s while charging,
StopTransaction, pause); it answers TriggerMessage (Accepted, then the message) and nothing else
beyond what the library answers by itself (NotImplemented). No hardware model, no persistence,
no offline queue, no configuration keys: it is the lower bound of what a simulator must do.

    python bench/baseline_ocpp_fleet.py --count N --csms-url ws://127.0.0.1:9000/ocpp --duration S

Bounded: it stops after --duration seconds (or at SIGTERM). Prints one JSON line (connected, booted, sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import resource
import signal
from datetime import UTC, datetime

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, TriggerMessageStatus

STATS = {"connected": 0, "booted": 0, "sessions": 0, "errors": 0}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BaselineChargePoint(ChargePoint):
    meter_wh = 0
    charging = False

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message: str, connector_id: int | None = None, **_: object):
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

    @after(Action.trigger_message)
    async def after_trigger(self, requested_message: str, connector_id: int | None = None, **_: object):
        if requested_message == "Heartbeat":
            await self.call(call.Heartbeat())
        elif requested_message == "StatusNotification":
            await self.status("Charging" if self.charging else "Available")

    async def status(self, state: str) -> None:
        await self.call(call.StatusNotification(connector_id=1, error_code="NoError", status=state))

    async def heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.call(call.Heartbeat())

    async def sessions(self, rng: random.Random, args: argparse.Namespace) -> None:
        if rng.random() >= args.busy_at_start:
            await asyncio.sleep(rng.expovariate(args.sessions_per_hour / 3600))
        else:
            await asyncio.sleep(rng.uniform(1, 10))
        while True:
            await self.status("Preparing")
            await asyncio.sleep(rng.uniform(2, 10))
            tag = f"FLEETCARD{rng.randrange(1000):06d}"
            await self.call(call.Authorize(id_tag=tag))
            start = await self.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=self.meter_wh,
                                                          timestamp=now()))
            self.charging = True
            STATS["sessions"] += 1
            await self.status("Charging")
            end = asyncio.get_running_loop().time() + rng.uniform(*args.session_minutes) * 60
            power_w = rng.choice((16, 32)) * 230 * rng.choice((1, 3))
            while asyncio.get_running_loop().time() < end:
                await asyncio.sleep(args.meter_interval)
                self.meter_wh += int(power_w * args.meter_interval / 3600)
                await self.call(call.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=[
                    {"timestamp": now(), "sampledValue": [
                        {"value": str(self.meter_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                        {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"}]}]))
            await self.call(call.StopTransaction(meter_stop=self.meter_wh, timestamp=now(),
                                                 transaction_id=start.transaction_id, id_tag=tag))
            self.charging = False
            await self.status("Finishing")
            await asyncio.sleep(rng.uniform(5, 60))
            await self.status("Available")
            await asyncio.sleep(rng.expovariate(args.sessions_per_hour / 3600) if args.sessions_per_hour else 1e9)


async def one(cp_id: str, args: argparse.Namespace, rng: random.Random, slots: asyncio.Semaphore) -> None:
    async with slots:
        ws = await websockets.connect(f"{args.csms_url.rstrip('/')}/{cp_id}", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    STATS["connected"] += 1
    cp = BaselineChargePoint(cp_id, ws)
    reader = asyncio.ensure_future(cp.start())
    try:
        boot = await cp.call(call.BootNotification(charge_point_model="Baseline", charge_point_vendor="Bench"))
        STATS["booted"] += 1
        await cp.status("Available")
        await asyncio.gather(reader, cp.heartbeats(float(boot.interval or 300)), cp.sessions(rng, args))
    finally:
        STATS["connected"] -= 1


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rng = random.Random(1)
    slots = asyncio.Semaphore(200)
    tasks = [asyncio.ensure_future(one(f"{args.id_prefix}{i:05d}", args, rng, slots)) for i in range(args.count)]
    stop = asyncio.ensure_future(asyncio.sleep(args.duration))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.cancel)  # SIGTERM: end now, with the JSON
    await asyncio.wait([stop])
    done = [t for t in tasks if t.done()]
    for t in done:
        if t.exception() is not None:
            STATS["errors"] += 1
    print(json.dumps(STATS), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--csms-url", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--id-prefix", default="BASE-")
    p.add_argument("--sessions-per-hour", type=float, default=2.0)
    p.add_argument("--session-minutes", type=float, nargs=2, default=(5.0, 15.0))
    p.add_argument("--busy-at-start", type=float, default=0.5)
    p.add_argument("--meter-interval", type=float, default=30.0)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(p.parse_args()))
