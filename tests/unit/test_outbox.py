"""The outbox alone (station/outbox.py) on a VirtualTimeLoop with a real SQLite store and a scripted
``send``: what counts as an attempt (a CallError, an unusable answer, a bug) and what does not (a
timeout), the retry waits and their cap, the unique id kept across resends, and that no failure
of the send or of a policy method ends the delivery loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from station.link import CallErrorReceived
from station.outbox import MAX_RETRY_WAIT_S, MIN_RETRY_WAIT_S, Outbox
from station.scheduler import LoopScheduler, VirtualTimeLoop
from station.store import Store


class Policy:
    def __init__(self, attempts: int = 3, interval: float = 10.0) -> None:
        self.attempts, self.interval = attempts, interval
        self.recorded: list[tuple[str, Any]] = []
        self.given_up: list[str] = []
        self.fail_record = 0
        self.fail_delivered = False

    def prepare(self, action: str, payload: dict, tx_local: int | None) -> dict | None:
        return payload

    def check(self, action: str, response: Any) -> str | None:
        return None if isinstance(response, dict) and response.get("ok") else f"unusable: {response!r}"

    def record(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        if self.fail_record:
            self.fail_record -= 1
            raise RuntimeError("cannot record")
        self.recorded.append((action, payload.get("n")))

    def delivered(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        if self.fail_delivered:
            raise RuntimeError("acting on it failed")

    def gave_up(self, action: str, payload: dict, tx_local: int | None) -> None:
        self.given_up.append(action)

    def max_attempts(self) -> int:
        return self.attempts

    def retry_interval(self) -> float:
        return self.interval


def run(scenario, answers: list, policy: Policy | None = None, tmp_path=None):
    """Queue messages, answer each send with the next item of ``answers`` (an exception is
    raised), run until idle; returns (sends as (loop time, action, n, unique id), policy, store)."""
    loop = VirtualTimeLoop()
    policy = policy or Policy()
    store = Store(tmp_path / "s.sqlite")
    sends: list[tuple[float, str, Any, str]] = []
    script = iter(answers)

    async def send(action: str, payload: dict, unique_id: str | None = None) -> dict:
        sends.append((asyncio.get_running_loop().time(), action, payload.get("n"), unique_id))
        answer = next(script, {"ok": True})
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def main() -> None:
        tasks: set[asyncio.Task] = set()

        def spawn(coro):
            t = asyncio.ensure_future(coro)
            tasks.add(t)
            return t

        outbox = Outbox(store=store, scheduler=LoopScheduler(), log=logging.getLogger("test.outbox"), send=send,
                        online=lambda: True, policy=policy, spawn=spawn)
        await scenario(outbox)
        for _ in range(200):  # until the queue is empty (or nothing happens for a long virtual time)
            if store.outbox_len() == 0:
                break
            await asyncio.sleep(60)
        outbox.stop()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return sends, policy, store


async def queue(outbox: Outbox, n: int = 2) -> None:
    for i in range(n):
        outbox.add("StartTransaction", {"n": i}, i)


def test_timeouts_are_not_attempts_and_keep_the_unique_id(tmp_path):
    sends, policy, store = run(queue, [TimeoutError()] * 6, Policy(attempts=2), tmp_path)
    first = [s for s in sends if s[2] == 0]
    assert len(first) == 7 and policy.given_up == []  # 6 timeouts, then the answer
    assert len({s[3] for s in first}) == 1 and len(first[0][3]) == 36
    assert policy.recorded == [("StartTransaction", 0), ("StartTransaction", 1)]
    waits = [b[0] - a[0] for a, b in zip(first, first[1:], strict=False)]
    assert all(w >= 10 for w in waits)  # TransactionMessageRetryInterval each time, no growth
    assert sends[-1][3] != first[0][3]  # the next message has its own id
    store.close()


@pytest.mark.parametrize("failure", [CallErrorReceived("InternalError", "no"), {"ok": False}, "not an object",
                                     ValueError("a bug in the send")])
def test_call_errors_unusable_answers_and_bugs_are_attempts_then_dropped(tmp_path, failure):
    answer = failure
    sends, policy, store = run(queue, [answer, answer, answer], Policy(attempts=3, interval=5), tmp_path)
    first = [s for s in sends if s[2] == 0]
    assert len(first) == 3 and policy.given_up == ["StartTransaction"]
    assert [round(b[0] - a[0]) for a, b in zip(first, first[1:], strict=False)] == [5, 10]  # n x interval
    assert policy.recorded == [("StartTransaction", 1)]  # the queue went on
    store.close()


def test_the_retry_wait_is_capped(tmp_path):
    sends, policy, store = run(queue, [CallErrorReceived("InternalError", "no")] * 2, Policy(attempts=5, interval=3000), tmp_path)
    first = [s for s in sends if s[2] == 0]
    assert round(first[2][0] - first[1][0]) == MAX_RETRY_WAIT_S  # 2 x 3000 s, cut to an hour
    store.close()


def test_a_zero_retry_interval_after_a_timeout_still_waits(tmp_path):
    sends, _, store = run(queue, [TimeoutError()], Policy(interval=0), tmp_path)
    assert sends[1][0] - sends[0][0] >= MIN_RETRY_WAIT_S
    store.close()


def test_a_failure_to_record_rolls_the_removal_back_and_resends_with_the_same_id(tmp_path):
    policy = Policy()
    policy.fail_record = 1
    sends, policy, store = run(queue, [], policy, tmp_path)
    first = [s for s in sends if s[2] == 0]
    assert len(first) == 2 and first[0][3] == first[1][3]
    assert policy.recorded == [("StartTransaction", 0), ("StartTransaction", 1)] and store.outbox_len() == 0
    store.close()


def test_a_failing_reaction_to_an_answer_does_not_stop_delivery(tmp_path):
    policy = Policy()
    policy.fail_delivered = True
    sends, policy, store = run(queue, [], policy, tmp_path)
    assert [s[2] for s in sends] == [0, 1] and store.outbox_len() == 0
    store.close()
