"""Settling an exchange between two chambers: the preparer reserves holds and offers, the
decider commits or aborts in one local transaction, and the preparer finishes.

* `steps`: `prepare`, the inbox handlers (``Offer``, abort request, decision) and the check job.
"""

from node.clearing.settlement.steps import (
    SETTLEMENT_CHECK_JOB,
    prepare,
    register_settlement_handlers,
    settlement_job_handlers,
)

__all__ = [
    "SETTLEMENT_CHECK_JOB",
    "prepare",
    "register_settlement_handlers",
    "settlement_job_handlers",
]
