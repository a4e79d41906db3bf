"""A clean stop (SIGTERM / Ctrl-C, station/runtime.py) in process on virtual time: running
transactions end with reason Reboot, their messages get a bounded time to reach the CSMS, what
is left stays queued for the next start, and a second stop does not wait. The real-process
version (SIGTERM, exit code, restart) is in test_cli_process.py."""

from __future__ import annotations

import asyncio

from tests.integration.harness import start_session


async def test_a_csms_that_does_not_answer_delays_the_stop_by_at_most_the_flush_time(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    csms.silent.add("StopTransaction")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await sp.stop()
    took = loop.time() - t0
    assert 7.0 <= took <= 12.0, took  # stop_flush_s = 8 s (virtual time)
    log = sp.log()
    assert "stopping: transaction 1 on connector 1 ended (Reboot)" in log
    assert "stopping: 1 transaction message(s) still queued; they are sent after the next start" in log
    assert [p["reason"] for p in csms.calls("StopTransaction")] == ["Reboot"]  # sent, never answered
    csms.silent.discard("StopTransaction")
    mark = csms.mark()
    sp.start()
    again = await csms.expect("StopTransaction", timeout=15)
    assert again["reason"] == "Reboot" and again["transactionId"] == 1
    await csms.no_call("StopTransaction", 2.0)
    assert [r.action for r in csms.received[mark:]].count("StopTransaction") == 1


async def test_a_second_stop_does_not_wait_for_the_csms(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    csms.silent.add("StopTransaction")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    done = sp.stop()
    await csms.expect("StopTransaction", timeout=5)
    sp.stop()  # Ctrl-C again
    await done
    assert loop.time() - t0 < 3.0
    assert "still queued" in sp.log()


async def test_a_clean_stop_without_a_transaction_sends_nothing(csms, booted):
    sp = await booted()
    mark = csms.mark()
    await sp.stop()
    assert [r.action for r in csms.received[mark:] if r.action in ("StopTransaction", "MeterValues")] == []
    assert "transaction message(s)" not in sp.log()
