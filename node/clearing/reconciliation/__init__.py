"""Reconciliation with each partner: signed statements of the mirror accounts, compared.

* `statements`: build, parse and compare statements (pure).
* `ledger`: what the ledger says about a partner (mirror statement, in-flight entries).
* `service`: `Reconciler` (send, receive, status), handlers and the periodic job.
* `models`: the per-partner row.
"""

from node.clearing.reconciliation.service import Reconciler, ReconciliationError

__all__ = ["Reconciler", "ReconciliationError"]
