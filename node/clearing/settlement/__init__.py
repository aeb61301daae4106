"""Settling an exchange between two chambers, one module per step.

The walk of an incoming settlement ``Offer`` (the decider's side), from the inbox to the
ledger: `inbox` routes ``("Offer", "Settlement")`` to `decide.on_settlement_offer`, which
claims the settlement row, checks the member's signed acceptance against the exchange, posts
it through `node.clearing.ledger.store.write` (or refuses it) and answers ``Accept`` or
``Reject`` in the same transaction.

* `prepare`: the preparer's first step (holds reserved, the ``Offer`` sent).
* `decide`: the decider's steps (the ``Offer``, an abort request).
* `finish`: the preparer's last step (the decision: holds posted or voided).
* `jobs`: the preparer's check job (ask again past the deadline).
* `inbox`: the handlers' registration; `common`: what the steps share.
"""

from node.clearing.settlement.common import SETTLEMENT_CHECK_JOB
from node.clearing.settlement.inbox import register_settlement_handlers
from node.clearing.settlement.jobs import settlement_job_handlers
from node.clearing.settlement.prepare import prepare

__all__ = [
    "SETTLEMENT_CHECK_JOB",
    "prepare",
    "register_settlement_handlers",
    "settlement_job_handlers",
]
