"""OCPP 2.0.1 block E requests: E14 GetTransactionStatus — whether a transaction is still
ongoing and whether TransactionEvents (of it, or of any transaction) wait in the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Transactions")


@routes.on("GetTransactionStatus")
async def get_transaction_status(ad: Ocpp201Adapter, p: dict) -> dict:
    tx_id = p.get("transactionId")
    queued = [payload for _, action, payload, _ in ad.store.outbox_all() if action == "TransactionEvent"]
    if tx_id is None:
        return {"messagesInQueue": bool(queued)}
    mine = any(q.get("transactionInfo", {}).get("transactionId") == tx_id for q in queued)
    return {"ongoingIndicator": ad.transactions.by_id(tx_id) is not None, "messagesInQueue": mine}
