"""The layout shows the architecture: pure modules do no I/O; the protocol knows no domain."""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import node

ROOT = Path(node.__file__).parent
IO_LIBRARIES = {"sqlalchemy", "httpx", "starlette", "httpcore", "uvicorn", "asyncpg", "aiosqlite"}
PURE_MODULES = [
    "node/activitypub/signatures.py",
    "node/activitypub/proofs.py",
    "node/activitypub/multikey.py",
    "node/activitypub/addresses.py",
    "node/activitypub/urls.py",
    "node/config.py",
    "node/secretbox.py",
    "node/clearing/ledger.py",
    "node/clearing/netting.py",
    "node/clearing/units.py",
    "node/clearing/states.py",
    "node/clearing/activities.py",
    "node/members/gate.py",
    "node/members/throttle.py",
    "node/activitypub/keys.py",
    "node/offers/as2.py",
    "node/offers/validation.py",
]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            roots.add(item.module.split(".")[0])
    return roots


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            names.update(alias.name for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module:
            names.add(item.module)
    return names


@pytest.mark.parametrize("relative", PURE_MODULES)
def test_pure_modules_import_no_io_library(relative: str) -> None:
    path = ROOT.parent / relative
    if not path.exists():
        pytest.skip(f"{relative} does not exist yet")
    assert imported_roots(path) & IO_LIBRARIES == set()


def test_the_protocol_layer_knows_no_domain() -> None:
    for path in (ROOT / "activitypub").rglob("*.py"):
        for module in imported_modules(path):
            assert not module.startswith(
                ("node.bricks", "node.clearing", "node.members", "node.web")
            ), f"{path} imports {module}"


def test_declared_public_names_exist() -> None:
    for info in pkgutil.walk_packages([str(ROOT)], prefix="node."):
        if ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.__all__ lists {name!r}, which is missing"
