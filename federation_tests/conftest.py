from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from federation_tests.harness import NodeProcess

NodeFactory = Callable[..., NodeProcess]


def _factory(root: Path, created: dict[str, NodeProcess]) -> NodeFactory:
    def factory(
        name: str,
        *init_args: str,
        start: bool = True,
        behind_proxy: bool = False,
        env: dict[str, str] | None = None,
    ) -> NodeProcess:
        """``init`` a chamber called ``name`` (its chamber actor too) and start it; with
        ``behind_proxy`` its public URL is a ``federation_tests.proxy.Proxy``'s (``.proxy``);
        ``env`` is added to the node's environment for every command and start."""
        node = NodeProcess(name=name, root=root, behind_proxy=behind_proxy)
        node.env.update(env or {})
        created[name] = node
        node.init(*init_args)
        if start:
            node.start()
        return node

    return factory


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, NodeProcess]]:
    """Chambers started by a test (see ``make_node``); all killed at the end."""
    created: dict[str, NodeProcess] = {}
    yield created
    for node in created.values():
        node.close()


@pytest.fixture
def make_node(tmp_path: Path, nodes: dict[str, NodeProcess]) -> NodeFactory:
    return _factory(tmp_path, nodes)


@pytest.fixture(scope="module")
def make_module_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFactory]:
    """As ``make_node``, for chambers shared by the tests of a module (killed at its end)."""
    created: dict[str, NodeProcess] = {}
    yield _factory(tmp_path_factory.mktemp("chambers"), created)
    for node in created.values():
        node.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-process tests run one at a time on one xdist worker (``--dist loadgroup``): their
    deadlines and kill timings are written for a machine that is not also running three
    chambers for a neighbour; the in-process tests spread over the other workers."""
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.xdist_group("real-processes"))
