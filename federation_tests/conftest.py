from collections.abc import Iterator
from pathlib import Path

import pytest

from federation_tests.harness import NodeProcess


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, NodeProcess]]:
    """Chambers started by a test (see ``make_node``); all killed at the end."""
    created: dict[str, NodeProcess] = {}
    yield created
    for node in created.values():
        node.kill()


@pytest.fixture
def make_node(tmp_path: Path, nodes: dict[str, NodeProcess]):  # type: ignore[no-untyped-def]
    def factory(name: str, *init_args: str, start: bool = True) -> NodeProcess:
        node = NodeProcess(name=name, root=tmp_path)
        node.init(*init_args)
        nodes[name] = node
        if start:
            node.start()
        return node

    return factory
