"""The commons bank: bricks, their versions, reviews and the federated catalogue."""

from node.bricks.service import contribution_stats

__all__ = ["contribution_stats"]
