"""Offers and needs ("je propose", "je cherche"): published by members, federated as FEP-0837
Proposals, found across the archipelago, answered by an exchange."""

from node.offers.inbox import register_offer_handlers
from node.offers.models import Offer, OfferKind, OfferState
from node.offers.service import (
    OfferForbidden,
    OfferNotFound,
    OfferPage,
    OfferQuery,
    close_offer,
    create_offer,
    find_offer,
    get_offer,
    offer_proposal,
    offers_of,
    search_offers,
)
from node.offers.validation import OfferInput, OfferInvalid, validate_offer

__all__ = [
    "Offer",
    "OfferForbidden",
    "OfferInput",
    "OfferInvalid",
    "OfferKind",
    "OfferNotFound",
    "OfferPage",
    "OfferQuery",
    "OfferState",
    "close_offer",
    "create_offer",
    "find_offer",
    "get_offer",
    "offer_proposal",
    "offers_of",
    "register_offer_handlers",
    "search_offers",
    "validate_offer",
]
