"""Send generated cases (tests/fuzz/frames.py) to a station over the ScriptedCsms's websocket and judge each answer.

Shared by the CI fuzz test and bench/fuzz_frames.py. A case that expects an answer waits for the
frame with its message id; a case that expects none registers its id too, and at the end no
answer may have arrived for it (a dropped frame is not answered later either).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

from station import ocpp_schema
from tests.fuzz.frames import ANSWER, DROP, Case, describe
from tests.integration.harness import ScriptedCsms

ANSWER_ERRORS = frozenset({"NotSupported", "NotImplemented"})  # a valid Call the station does not serve


@dataclass
class Outcome:
    sent: int = 0
    counts: Counter = field(default_factory=Counter)  # "CallResult", a CallError code, "dropped"
    failures: list[str] = field(default_factory=list)

    def fail(self, case: Case, why: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(f"{why}: {describe(case)}")


def judge(version: str, case: Case, msg: list, out: Outcome) -> None:
    if msg[0] == 3:
        out.counts["CallResult"] += 1
        if case.expect != ANSWER:
            out.fail(case, f"answered with a CallResult {json.dumps(msg)[:200]}")
            return
        try:
            ocpp_schema.validate(version, case.action, msg[2], result=True)
        except Exception as e:
            out.fail(case, f"the station's answer breaks the response schema ({e})")
        return
    code = msg[2]
    out.counts[code] += 1
    ok_shape = len(msg) == 5 and isinstance(msg[3], str) and len(msg[3]) <= 255 and isinstance(msg[4], dict)
    if not ok_shape:
        out.fail(case, f"malformed CallError {json.dumps(msg)[:200]}")
    if case.expect == ANSWER:
        if code not in ANSWER_ERRORS:
            out.fail(case, f"a valid Call got CallError {code} ({msg[3]})")
    elif case.expect == DROP:
        out.fail(case, f"answered {code} where nothing may be answered")
    elif code not in case.codes:
        out.fail(case, f"got {code} ({msg[3]}), expected one of {sorted(case.codes)}")


async def storm(csms: ScriptedCsms, version: str, cases: list[Case] | object, window: int = 8,
                timeout: float = 10.0) -> Outcome:
    """Send every case, at most ``window`` awaiting their answer at once; judge each."""
    out = Outcome()
    loop = asyncio.get_running_loop()
    silent: list[tuple[Case, asyncio.Future]] = []  # cases kept short: hostile texts can be 100 KB
    slots = asyncio.Semaphore(window)
    running: set[asyncio.Task] = set()

    async def wait_answer(case: Case, fut: asyncio.Future) -> None:
        try:
            msg = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            out.fail(case, f"no answer within {timeout:g} s")
            return
        except ConnectionError:
            out.fail(case, "the station disconnected")
            return
        finally:
            slots.release()
        judge(version, case, msg, out)

    for case in cases:  # type: ignore[attr-defined]
        await slots.acquire()
        await asyncio.wait_for(csms.connected.wait(), timeout)
        fut: asyncio.Future | None = None
        if case.uid is not None and case.uid not in csms._pending:
            fut = loop.create_future()
            csms._pending[case.uid] = fut
        ws = csms.ws
        assert ws is not None
        await ws.send(case.text)
        out.sent += 1
        if out.sent % 1000 == 0:
            csms.errors_from_station.clear()  # judged here by message id; the record would only grow
        if case.expect == DROP or fut is None:
            slots.release()
            out.counts["dropped"] += 1
            if fut is not None:
                short = Case(case.text[:300], case.uid, case.expect, case.codes, case.label, case.action)
                silent.append((short, fut))
            continue
        task = asyncio.ensure_future(wait_answer(case, fut))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
    # a frame that must get no answer: the station has answered every later one, so none will come
    for case, fut in silent:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            out.fail(case, f"answered {json.dumps(fut.result())[:200]} where nothing may be answered")
        csms._pending.pop(case.uid or "", None)
    return out
