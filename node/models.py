"""Imports every table so that ``Base.metadata`` is complete (Alembic and tests use it)."""

from node import jobs, process_store
from node.activitypub import models as activitypub_models
from node.bricks import models as bricks_models
from node.clearing.ledger import models as clearing_models
from node.clearing.partners import models as partner_models
from node.clearing.reconciliation import models as reconciliation_models
from node.clearing.rounds import models as round_models
from node.db import Base
from node.members import models as members_models
from node.offers import models as offers_models

__all__ = [
    "Base",
    "activitypub_models",
    "bricks_models",
    "clearing_models",
    "jobs",
    "members_models",
    "offers_models",
    "partner_models",
    "process_store",
    "reconciliation_models",
    "round_models",
]
