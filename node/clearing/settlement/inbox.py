"""The settlement's inbox handlers, one per (activity, object) pair."""

from __future__ import annotations

from node.activitypub.inbox import InboxDispatcher
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.settlement.common import SETTLEMENT_TYPE
from node.clearing.settlement.decide import on_abort_request, on_settlement_offer
from node.clearing.settlement.finish import on_decision

__all__ = ["register_settlement_handlers"]


def register_settlement_handlers(dispatcher: InboxDispatcher, house: ClearingHouse) -> None:
    dispatcher.register("Offer", SETTLEMENT_TYPE, on_settlement_offer(house))
    dispatcher.register("Undo", ("Offer", SETTLEMENT_TYPE), on_abort_request(house))
    decision = on_decision(house)
    dispatcher.register("Accept", ("Offer", SETTLEMENT_TYPE), decision)
    dispatcher.register("Reject", ("Offer", SETTLEMENT_TYPE), decision)
