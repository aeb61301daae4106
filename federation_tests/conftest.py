from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

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


#: Where these tests live, as their node ids start (relative to the rootdir).
_HERE = Path(__file__).resolve().parent


class _ModulesOfRealProcesses(LoadScopeScheduling):
    """``--dist loadgroup`` as ``make test`` runs it: the tests of one module of real-process
    tests form one unit of work (run one at a time on one worker, which starts the module's
    shared chambers once); every other test is a unit of its own. Units are handed out
    largest first, then in collection order, where the real-process tests come first (see
    ``pytest_collection_modifyitems``): they start first, and the many short in-process tests
    fill both workers up to the end.

    (xdist's own ``loadgroup`` cannot do it with pytest 9: it renames the tests' node ids,
    which pytest no longer lets a plugin do; the units are therefore made here.)"""

    def __init__(self, config: pytest.Config, log: Any = None, prefix: str = "") -> None:
        super().__init__(config, log)
        self.prefix = prefix

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if path.startswith(self.prefix) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    prefix = _HERE.relative_to(config.rootpath).as_posix() + "/"
    return _ModulesOfRealProcesses(config, log, prefix)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real-process tests first (see ``_ModulesOfRealProcesses``), each module in order."""
    ours = [item for item in items if Path(str(item.fspath)).resolve().is_relative_to(_HERE)]
    taken = set(ours)
    items[:] = ours + [item for item in items if item not in taken]
