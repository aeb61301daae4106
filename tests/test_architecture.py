"""The layout shows the architecture: pure modules do no I/O; the protocol knows no domain."""

import ast
import functools
import importlib
import pkgutil
from dataclasses import dataclass
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
    "node/clearing/ledger/rules.py",
    "node/clearing/rounds/netting.py",
    "node/clearing/rounds/protocol.py",
    "node/clearing/rounds/review.py",
    "node/clearing/rounds/states.py",
    "node/clearing/ledger/holds.py",
    "node/clearing/reconciliation/states.py",
    "node/clearing/reconciliation/statements.py",
    "node/clearing/reconciliation/wire.py",
    "node/clearing/units.py",
    "node/clearing/exchanges/states.py",
    "node/clearing/exchanges/activities.py",
    "node/members/gate.py",
    "node/members/throttle.py",
    "node/activitypub/keys.py",
    "node/offers/as2.py",
    "node/offers/validation.py",
    "node/activitypub/_signing.py",
]


@functools.cache
def syntax_nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the module's syntax tree, in ``ast.walk``'s order (parsed once a run:
    the checks below walk each module several times)."""
    return tuple(ast.walk(ast.parse(path.read_text())))


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for item in syntax_nodes(path):
        if isinstance(item, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            roots.add(item.module.split(".")[0])
    return roots


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for item in syntax_nodes(path):
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


# --- the import graph -------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path
    for path in sorted(ROOT.rglob("*.py"))
    if "migrations" not in path.relative_to(ROOT).parts
}


@dataclass(frozen=True)
class Import:
    """One imported name: ``module`` (a module of node) and, for ``from m import n``, the
    ``name`` taken from it (None for ``import m``), at ``line``."""

    module: str
    name: str | None
    line: int


def _absolute(importer: str, node_: ast.ImportFrom) -> str:
    if node_.level == 0:
        return node_.module or ""
    package = importer.split(".")
    if MODULES[importer].name != "__init__.py":
        package.pop()
    package = package[: len(package) - (node_.level - 1)]
    return ".".join([*package, *([node_.module] if node_.module else [])])


@functools.cache
def imports_of(importer: str) -> tuple[Import, ...]:
    """Every import of a module of ``node`` by ``importer``, at any depth (inside functions
    too), relative ones resolved. ``from package import submodule`` is an import of the
    submodule."""
    found: list[Import] = []
    for item in syntax_nodes(MODULES[importer]):
        if isinstance(item, ast.Import):
            for alias in item.names:
                if alias.name in MODULES:
                    found.append(Import(alias.name, None, item.lineno))
        elif isinstance(item, ast.ImportFrom):
            source = _absolute(importer, item)
            for alias in item.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    found.append(Import(submodule, None, item.lineno))
                elif source in MODULES:
                    found.append(Import(source, alias.name, item.lineno))
    return tuple(found)


def import_graph() -> dict[str, set[str]]:
    return {name: {i.module for i in imports_of(name)} - {name} for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(name: str) -> None:  # Tarjan
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in sorted(graph[name]):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == name:
                    break
            if len(component) > 1:
                components.append(component)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    found = []
    for component in components:
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until a module repeats
            step = min(t for t in graph[path[-1]] if t in component)
            if step in seen:
                found.append([*path[path.index(step) :], step])
                break
            path.append(step)
            seen.add(step)
    return found


def test_cycle_detection_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_node() -> None:
    """Imports inside functions count: they hide a cycle, they do not remove it."""
    found = [" → ".join(cycle) for cycle in cycles(import_graph())]
    assert found == [], "import cycles:\n" + "\n".join(found)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def private_imports(importer: str) -> list[str]:
    """What ``importer`` takes from another module that the other keeps to itself.

    The rule: a name starting with ``_`` (not a dunder) is private to the module that defines
    it. Another module may not import it (``from node.x import _y``) nor reach it through an
    imported module or class (``x._y``, ``SomeClass._y``). A private *module* (``_mod.py``)
    belongs to its package: modules of that package (and its subpackages) may import it,
    others may not.
    """
    problems: list[str] = []
    imported: dict[str, str] = {}  # local name → module it comes from
    for found in imports_of(importer):
        if found.name is not None and _is_private(found.name):
            problems.append(f"line {found.line}: from {found.module} import {found.name}")
        private_parts = [
            ".".join(found.module.split(".")[: i + 1])
            for i, part in enumerate(found.module.split("."))
            if _is_private(part)
        ]
        for private_module in private_parts:
            owner = private_module.rpartition(".")[0]
            if not (importer == owner or importer.startswith(owner + ".")):
                problems.append(f"line {found.line}: imports {found.module} from outside {owner}")
    tree = syntax_nodes(MODULES[importer])
    for item in tree:
        if isinstance(item, ast.ImportFrom):
            source = _absolute(importer, item)
            for alias in item.names:
                if source.startswith("node") and alias.name != "*":
                    imported[alias.asname or alias.name] = source
        elif isinstance(item, ast.Import):
            for alias in item.names:
                if alias.name.startswith("node.") and alias.asname:
                    imported[alias.asname] = alias.name
    for item in tree:
        if (
            isinstance(item, ast.Attribute)
            and isinstance(item.value, ast.Name)
            and item.value.id in imported
            and _is_private(item.attr)
        ):
            problems.append(f"line {item.lineno}: {item.value.id}.{item.attr}")
    return problems


def test_private_import_detection() -> None:
    assert _is_private("_get") and not _is_private("__all__") and not _is_private("get")
    # a private module is its package's: node.activitypub's modules may import _http_message
    assert private_imports("node.activitypub.signatures") == []


def test_no_module_uses_another_modules_private_names() -> None:
    found = [f"{name}: {problem}" for name in MODULES for problem in private_imports(name)]
    assert found == [], "private names used across modules:\n" + "\n".join(found)


# --- sizes ------------------------------------------------------------------------------------

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def long_functions(path: Path) -> list[tuple[str, int, int]]:
    """(name, line, length) of each function (nested ones too) over the limit."""
    return [
        (item.name, item.lineno, item.end_lineno - item.lineno + 1)
        for item in syntax_nodes(path)
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
        and item.end_lineno is not None
        and item.end_lineno - item.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_file_over_600_lines() -> None:
    found = [
        f"{path.relative_to(ROOT.parent)} ({count} lines)"
        for path in MODULES.values()
        if (count := len(path.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert found == [], "files over 600 lines:\n" + "\n".join(found)


def test_no_function_over_80_lines() -> None:
    found = [
        f"{relative}:{line} {name} ({length} lines)"
        for path in MODULES.values()
        for name, line, length in long_functions(path)
        if (relative := path.relative_to(ROOT.parent))
    ]
    assert found == [], "functions over 80 lines:\n" + "\n".join(found)


# --- web/ by domain, thin -----------------------------------------------------------------------

#: Route modules that reach the database only through their domain's services and queries.
#: The others still hold queries of their own; a module leaves this list never.
SQL_FREE_ROUTES = [
    "node/web/account_tokens.py",
    "node/web/actors.py",
    "node/web/admin_partners.py",
    "node/web/clearing.py",
    "node/web/clearing_api.py",
    "node/web/partners_api.py",
    "node/web/rounds.py",
]


@pytest.mark.parametrize("relative", SQL_FREE_ROUTES)
def test_thin_routes_write_no_sql(relative: str) -> None:
    assert "sqlalchemy" not in imported_roots(ROOT.parent / relative)


def test_web_holds_no_application_service() -> None:
    """Operations on a domain live in the domain (``node.bricks.operations``), not in web/."""
    assert not list((ROOT / "web").glob("*_ops.py"))


# --- the composition root ---------------------------------------------------------------------

SERVICES = {"ClearingHouse", "RoundService", "Reconciler", "BrickService"}


def services_built(path: Path) -> set[str]:
    """The services ``path`` builds: ``ClearingHouse(...)``, ``RoundService.from_settings(...)``."""
    built = set()
    for item in syntax_nodes(path):
        if not isinstance(item, ast.Call):
            continue
        func = item.func
        if isinstance(func, ast.Attribute) and func.attr == "from_settings":
            func = func.value
        if isinstance(func, ast.Name) and func.id in SERVICES:
            built.add(func.id)
    return built


def test_services_are_built_once_by_the_runtime() -> None:
    """Routes, inbox handlers and commands get them from ``node.runtime.Services``."""
    found = [
        f"builds {path.relative_to(ROOT.parent)} {name}"
        for path in MODULES.values()
        if path != ROOT / "runtime.py"
        for name in sorted(services_built(path))
    ]
    assert found == []
    assert services_built(ROOT / "runtime.py") == SERVICES


# --- one durable-process engine -----------------------------------------------------------------

#: Where a process's state is written: `node.process.StateGraph` assigns it (checked against
#: the graph) and `node.process_store` records it. Nothing else assigns one.
ENGINE = {"node/process.py", "node/process_store.py"}

STATE_ATTRIBUTES = {"state", "status"}


def process_tables() -> set[str]:
    """The tables (classes mapped on ``Base``) with a ``state`` or ``status`` column."""
    found = set()
    for path in MODULES.values():
        for item in syntax_nodes(path):
            if not isinstance(item, ast.ClassDef):
                continue
            if not any(isinstance(b, ast.Name) and b.id == "Base" for b in item.bases):
                continue
            for statement in item.body:
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and statement.target.id in STATE_ATTRIBUTES
                ):
                    found.add(item.name)
    return found


def _targets(item: ast.AST) -> list[ast.expr]:
    if isinstance(item, ast.Assign):
        targets = list(item.targets)
    elif isinstance(item, ast.AugAssign | ast.AnnAssign):
        targets = [item.target]
    else:
        return []
    flat: list[ast.expr] = []
    while targets:
        target = targets.pop()
        if isinstance(target, ast.Tuple | ast.List):
            targets.extend(target.elts)
        else:
            flat.append(target)
    return flat


def state_assignments(path: Path, tables: set[str]) -> list[str]:
    """``row.state = …`` / ``row.status = …`` (or a table built with ``state=…``) in a module
    that handles process rows. ``self.state = …`` is an object's own field (an error, a
    replay's value), not a row."""
    tree = syntax_nodes(path)
    names = {
        alias.asname or alias.name
        for i in tree
        if isinstance(i, ast.ImportFrom)
        for alias in i.names
    }
    names |= {i.name for i in tree if isinstance(i, ast.ClassDef)}
    if not names & tables:
        return []
    found = []
    for item in tree:
        for target in _targets(item):
            if (
                isinstance(target, ast.Attribute)
                and target.attr in STATE_ATTRIBUTES
                and not (isinstance(target.value, ast.Name) and target.value.id == "self")
            ):
                found.append(f"line {target.lineno}: {ast.unparse(target)} = …")
        if (
            isinstance(item, ast.Call)
            and isinstance(item.func, ast.Name)
            and item.func.id in tables
        ):
            for keyword in item.keywords:
                if keyword.arg in STATE_ATTRIBUTES:
                    found.append(f"line {item.lineno}: {item.func.id}({keyword.arg}=…)")
    return found


def test_state_assignment_detection() -> None:
    tables = process_tables()
    assert {"Exchange", "Settlement", "ClearingRound", "RoundParticipant", "Hold"} <= tables
    assert {"Reconciliation", "Job"} <= tables
    assert {"Follow", "Member", "Offer"} <= tables


def test_every_process_changes_state_through_the_engine() -> None:
    """Exchanges, settlements, rounds and their chambers, holds, reconciliation, jobs,
    follows, members' standing and offers: a state changes only by
    `node.process_store.move` / `start` (the graph checks it, the store records it)."""
    tables = process_tables()
    found = [
        f"{relative}: {problem}"
        for path in MODULES.values()
        if (relative := str(path.relative_to(ROOT.parent))) not in ENGINE
        and relative not in PURE_MODULES
        for problem in state_assignments(path, tables)
    ]
    assert found == [], "states assigned outside the engine:\n" + "\n".join(found)
