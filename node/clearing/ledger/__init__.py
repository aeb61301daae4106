"""The ledger: pure rules over balances and limits, and the tables that keep them.

* `rules`: transactions, postings, limits, levy and *fonte* (pure: no I/O).
* `models`: accounts, transactions, entries, exchanges and their events.
"""

from node.clearing.ledger.models import (
    ClearingAccount,
    ClearingEntry,
    ClearingEvent,
    ClearingTransaction,
    Exchange,
)
from node.clearing.ledger.rules import AccountKind, LedgerError, Limits, Posting, Transaction

__all__ = [
    "AccountKind",
    "ClearingAccount",
    "ClearingEntry",
    "ClearingEvent",
    "ClearingTransaction",
    "Exchange",
    "LedgerError",
    "Limits",
    "Posting",
    "Transaction",
]
