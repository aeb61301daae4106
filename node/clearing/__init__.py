"""The mutual-credit clearing house, one subpackage per face.

* `node.clearing.ledger`: the ledger's pure rules and its tables (accounts, transactions,
  entries, exchanges and their events).
* `node.clearing.exchanges`: exchanges between members (`ClearingHouse`), their states and
  signed activities, the inbox handlers and the periodic jobs (expiry, *fonte*).
* `node.clearing.settlement`: settling an exchange between two chambers (prepare, decide,
  finish).
* `node.clearing.partners`: partner chambers, their credit lines and the partnership handshake.
* `node.clearing.rounds`: multilateral clearing rounds (netting cycles of debt).
* `node.clearing.reconciliation`: comparing statements of mirror accounts with each partner.
* `node.clearing.units` (minutes, errors) and `node.clearing.verify` (``archipel verify``).
"""

__all__: list[str] = []
