"""Multilateral clearing rounds: chambers net out cycles of debt between them.

* `protocol`: the round's documents, its states and their pure checks.
* `netting`: the minimum-cost netting of obligations (pure).
* `service`: `RoundService` (the proposer's and the participant's sides), handlers and jobs.
* `models`, `views`: the tables and what pages and the API show.
"""

from node.clearing.rounds.protocol import RoundError, RoundState
from node.clearing.rounds.service import RoundService

__all__ = ["RoundError", "RoundService", "RoundState"]
