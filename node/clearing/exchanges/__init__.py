"""Exchanges between members: declare, answer, post; between chambers, settle.

* `house`: `ClearingHouse`, the service (declare, act, expire, *fonte*, limits, views).
* `states`: the exchange's and the settlement's state graphs (pure).
* `activities`: the signed activities and the replay that verifies a history (pure).
* `history`: an exchange's moves and events, written in one place.
* `inbox`: the handlers of other chambers' exchange activities.
* `copies`: our copy of another chamber's exchange kept in step, crossings included.
* `jobs`: expiry of declarations and *fonte* as periodic jobs.
* `notices`, `queries`: members' notifications, read-only queries.
"""

from node.clearing.exchanges.house import ClearingHouse, ClearingTerms
from node.clearing.exchanges.states import ExchangeState, ExchangeStates, SettlementStates

__all__ = ["ClearingHouse", "ClearingTerms", "ExchangeState", "ExchangeStates", "SettlementStates"]
