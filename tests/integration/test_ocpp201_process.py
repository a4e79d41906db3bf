"""An OCPP 2.0.1 station as a real process (``python -m station run --ocpp 2.0.1``): a power cut
(kill -9) during a transaction, and the restart that ends it with stoppedReason PowerLoss, its
seqNo continuing without a gap."""

from __future__ import annotations

import pytest

from tests.conftest import FAST201
from tests.integration.harness import StationProcess

pytestmark = pytest.mark.process


async def test_power_cut_during_transaction_ends_it_after_restart(csms201, tmp_path):
    sp = StationProcess(tmp_path, f"ws://127.0.0.1:{csms201.port}/ocpp", "CS201P", 1, FAST201,  # type: ignore[arg-type]
                        ["--ocpp", "2.0.1"])
    try:
        sp.start()
        boot = await csms201.expect("BootNotification", timeout=20)
        assert boot["reason"] == "PowerUp"
        await sp.wait_api()
        await sp.plug()
        await sp.swipe("TAG1")
        started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=15)
        tx_id = started["transactionInfo"]["transactionId"]
        sp.kill()
        await csms201.disconnected.wait()
        sp.start()
        await csms201.expect("BootNotification", timeout=20)
        end = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
        assert end["transactionInfo"]["transactionId"] == tx_id
        assert end["transactionInfo"]["stoppedReason"] == "PowerLoss"
        # a message whose answer the cut left unrecorded is sent again with the same message id
        # (at least once, as OCPP-J allows): counted once
        events = {r.unique_id: r.payload["seqNo"] for r in csms201.received if r.action == "TransactionEvent"
                  and r.payload["transactionInfo"]["transactionId"] == tx_id}
        seqs = sorted(events.values())
        assert seqs == list(range(len(seqs)))
    finally:
        await sp.aclose()


async def test_sigterm_ends_the_transaction_with_reboot(csms201, tmp_path):
    """systemctl stop of a 2.0.1 station: the transaction ends now (stoppedReason Reboot) and the
    Ended event reaches the CSMS before the process exits."""
    sp = StationProcess(tmp_path, f"ws://127.0.0.1:{csms201.port}/ocpp", "CS201Q", 1, FAST201,  # type: ignore[arg-type]
                        ["--ocpp", "2.0.1"])
    try:
        sp.start()
        await csms201.expect("BootNotification", timeout=20)
        await sp.wait_api()
        await sp.plug()
        await sp.swipe("TAG1")
        started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=15)
        await sp.stop()
        assert sp.proc.returncode == 0
        ended = [p for p in csms201.calls("TransactionEvent") if p["eventType"] == "Ended"]
        assert len(ended) == 1
        assert ended[0]["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
        assert ended[0]["transactionInfo"]["stoppedReason"] == "Reboot"
    finally:
        await sp.aclose()
