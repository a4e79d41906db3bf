"""Fleet benchmark: our fleet (``station fleet``) or the plain ``ocpp`` baseline
(bench/baseline_ocpp_fleet.py) against the load-test CSMS (station/sim/load_csms.py), each in its
own process on 127.0.0.1, with sessions running.

    python bench/fleet.py --impl fleet --count 5000
    python bench/fleet.py --impl baseline --count 5000

Timeline (every part bounded): the CSMS starts; the fleet under test starts and ramps up for
``--ramp`` seconds; then for ``--steady`` seconds the CSMS sends TriggerMessage(Heartbeat) to
random connected stations (``--trigger-rate`` a second) and times each answer (CSMS -> station
round trip); then both stop. Sampled once a second from /proc: the fleet's RSS and CPU time (its
process and children). Prints one JSON line and one Markdown table row.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """pid and its descendants (a fleet with --processes)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _sample(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds) of the process tree."""
    rss, cpu = 0, 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                cpu += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            continue
    return rss, cpu


def run(args: argparse.Namespace) -> dict:
    total = args.ramp + args.steady
    csms = subprocess.Popen([sys.executable, "-m", "station.sim.load_csms", "--port", "0", "--no-ids",
                             "--duration", str(total), "--trigger-rate", str(args.trigger_rate),
                             "--trigger-after", str(args.ramp), "--linger", "60"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert csms.stdout is not None
    port = int(csms.stdout.readline().split()[-1])
    url = f"ws://127.0.0.1:{port}/ocpp"
    life = total + 15  # the fleet outlives the CSMS's measurement
    with tempfile.TemporaryDirectory() as tmp:
        summary_file = Path(tmp) / "fleet.json"
        if args.impl == "fleet":
            cmd = [sys.executable, "-m", "station", "fleet", "--count", str(args.count), "--csms-url", url,
                   "--profile", str(ROOT / "bench" / "fleet-profile.toml"), "--duration", str(life),
                   "--json", str(summary_file), "--processes", str(args.processes), "--ocpp", args.ocpp]
        else:
            cmd = [sys.executable, str(ROOT / "bench" / "baseline_ocpp_fleet.py"), "--count", str(args.count),
                   "--csms-url", url, "--duration", str(life)]
        t0 = time.monotonic()
        fleet = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in csms.stdout], daemon=True).start()  # type: ignore[union-attr]
        samples = []
        seen = None
        while seen is None and csms.poll() is None:
            samples.append((time.monotonic() - t0, *_sample(fleet.pid)))
            try:
                seen = json.loads(lines.get(timeout=1.0))
            except queue.Empty:
                pass
        assert seen is not None, "the CSMS ended without a summary"
        fleet.send_signal(signal.SIGTERM)  # a clean stop against the CSMS, which lingers for it
        fleet_out, fleet_err = fleet.communicate(timeout=life + 120)
        csms.terminate()
        csms.wait(timeout=30)
        own = json.loads(summary_file.read_text()) if summary_file.exists() else None
        if own is None and fleet_out.strip():
            own = json.loads(fleet_out.strip().splitlines()[-1])
    steady = [s for s in samples if s[0] >= args.ramp]
    rss_max = max(s[1] for s in steady) if steady else 0
    cpu_pct = 100 * (steady[-1][2] - steady[0][2]) / max(1e-6, steady[-1][0] - steady[0][0]) if len(steady) > 1 else None
    st = seen.get("steady", {})
    result = {
        "impl": args.impl, "count": args.count, "processes": args.processes, "ocpp": args.ocpp,
        "connected": seen["connected"], "connected_at_steady_start": st.get("connected_at_start"),
        "booted": seen["booted"],
        "rss_mb": round(rss_max / 2**20, 1), "kb_per_station": round(rss_max / args.count / 1024, 1),
        "cpu_percent": round(cpu_pct, 1) if cpu_pct is not None else None,
        "trigger": seen["trigger"], "msgs_per_s_to_csms": st.get("received_per_s"),
        "msgs_per_s_from_csms": st.get("sent_per_s"), "csms_cpu_percent": st.get("csms_cpu_percent"),
        "actions": seen["actions"], "open_transactions": seen["open_transactions"],
        "fleet_summary": own, "fleet_exit": fleet.returncode, "fleet_stderr_tail": fleet_err[-600:],
        "ramp_s": args.ramp, "steady_s": args.steady, "trigger_rate": args.trigger_rate,
    }
    return result


def row(r: dict) -> str:
    t = r["trigger"]
    return (f"| {r['impl']} | {r['count']} | {r['connected']}/{r['count']} | {r['kb_per_station']} KB "
            f"({r['rss_mb']} MB) | {r['cpu_percent']} % | {t['p50_ms']} / {t['p99_ms']} ms "
            f"({t['count']}, errors {sum(t['errors'].values())}) | {r['msgs_per_s_to_csms']} / "
            f"{r['msgs_per_s_from_csms']} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", choices=["fleet", "baseline"], required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--processes", type=int, default=1, help="fleet only: --processes")
    p.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6", help="fleet only: OCPP version of the stations")
    p.add_argument("--ramp", type=float, help="seconds for the ramp-up (default: 20 + count / 250)")
    p.add_argument("--steady", type=float, default=60.0)
    p.add_argument("--trigger-rate", type=float, default=20.0)
    args = p.parse_args()
    if args.ramp is None:
        args.ramp = 20 + args.count / 250
    r = run(args)
    print(json.dumps(r), flush=True)
    print(row(r), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
