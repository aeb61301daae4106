"""Which member hears of a change to an exchange (``node.members.notifications``).

Called with one line where the change is recorded (declared, amended, answered here or by
the other chamber, settled), in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from node.clearing.ledger.models import Exchange
from node.clearing.units import format_minutes
from node.members.notifications import NotificationType, handle_of, notify

__all__ = ["notify_exchange"]

_TYPE_OF = {
    "declare": NotificationType.EXCHANGE_PROPOSED,
    "amend": NotificationType.EXCHANGE_PROPOSED,
    "accept": NotificationType.EXCHANGE_ACCEPTED,
    "contest": NotificationType.EXCHANGE_CONTESTED,
    "refuse": NotificationType.EXCHANGE_REFUSED,
    "settled": NotificationType.EXCHANGE_SETTLED,
    "reopened": NotificationType.EXCHANGE_REOPENED,
}

#: Events every local party hears of, whoever caused them.
_EVERYONE = frozenset({"settled", "reopened"})


async def notify_exchange(
    session: AsyncSession, exchange: Exchange, event: str, actor_uri: str
) -> None:
    """Tell the local parties of ``exchange`` other than ``actor_uri`` (for ``settled``, and
    ``reopened`` when a settlement's abort brings an accepted exchange back to an open state:
    every local party) what happened; other events (withdraw, expire) tell no one."""
    type_ = _TYPE_OF.get(event)
    if type_ is None:
        return
    params = {
        "who": handle_of(actor_uri),
        "duration": format_minutes(exchange.minutes),
        "description": exchange.description[:120],
    }
    parties = (
        (exchange.provider_member_id, exchange.provider_uri),
        (exchange.beneficiary_member_id, exchange.beneficiary_uri),
    )
    for member_id, uri in parties:
        if member_id is not None and (event in _EVERYONE or uri != actor_uri):
            await notify(session, member_id, type_, f"/exchanges/{exchange.key}", params)
