"""Benchmark: the cost of synchronous=FULL against NORMAL for the store's transaction messages.

    .venv/bin/python bench/store_sync.py [--n 2000] [--dir DIR]

Opens a store in DIR (default: a temporary directory under the current one, i.e. the disk the
station's state would live on) and times N outbox_add + outbox_remove pairs (one commit each, as
a queued MeterValues costs) and N tx_save checkpoints, once per synchronous mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from station.store import Store  # noqa: E402


def run(directory: Path, mode: str, n: int) -> dict[str, float]:
    s = Store(directory / f"bench-{mode}.sqlite")
    s.db.execute(f"PRAGMA synchronous={mode}")
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "2026-12-02T00:00:00Z",
                                                 "sampledValue": [{"value": "1234.5"}] * 4}]}
    times = []
    for _ in range(n):
        t = time.perf_counter()
        seq = s.outbox_add("MeterValues", payload, 1)
        s.outbox_remove(seq)
        times.append((time.perf_counter() - t) / 2)
    saves = []
    for i in range(n):
        t = time.perf_counter()
        s.tx_save(1, 1, "CARD", {"meter_last_wh": i, "samples": []})
        saves.append(time.perf_counter() - t)
    s.close()
    return {"commit_median_ms": statistics.median(times) * 1e3, "commit_p99_ms": sorted(times)[int(n * 0.99)] * 1e3,
            "tx_save_median_ms": statistics.median(saves) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dir", default=".")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir, prefix="store-bench-") as d:
        for mode in ("NORMAL", "FULL"):
            r = run(Path(d), mode, a.n)
            print(f"{mode:6}  commit median {r['commit_median_ms']:.3f} ms  p99 {r['commit_p99_ms']:.3f} ms  "
                  f"tx_save median {r['tx_save_median_ms']:.3f} ms")


if __name__ == "__main__":
    main()
