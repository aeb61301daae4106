"""Partner chambers: credit lines, the partnership handshake, settlement and hold tables.

* `models`: `Partner`, `Settlement`, `Hold`.
* `service`: add a partner, set its credit line, list partners and settlements.
* `partnership`: the ``Offer``/``Accept`` of a partnership between chambers.
"""

from node.clearing.partners.models import Hold, Partner, Settlement
from node.clearing.partners.service import (
    PartnerError,
    add_partner,
    list_partners,
    partner_by_uri,
    set_credit_line,
)

__all__ = [
    "Hold",
    "Partner",
    "PartnerError",
    "Settlement",
    "add_partner",
    "list_partners",
    "partner_by_uri",
    "set_credit_line",
]
