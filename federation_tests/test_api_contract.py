"""Schemathesis against a live chamber: every operation of the served /api/v1/openapi.json,
with a member's token and with an administrator's, answers no 5xx, only documented status
codes, and bodies that match their schemas."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest

from federation_tests.conftest import NodeFactory
from federation_tests.harness import NodeProcess
from tests.conftest import postgres_database  # noqa: F401 -- the fixture, for PostgreSQL

if TYPE_CHECKING:
    from schemathesis import Case, GenerationMode

# schemathesis is imported by the tests themselves, not at collection: every xdist worker
# collects this module, and importing schemathesis there (assertion rewriting included) costs
# a worker that does not run it about a second of CPU.

pytestmark = pytest.mark.federation

#: Examples per operation and mode (about 40 operations, two tokens, two databases): bounded
#: so that the whole run stays within a minute.
EXAMPLES = 6


def _checks() -> list[Any]:
    """No 5xx, documented status codes, content types and bodies."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def chamber(
    request: pytest.FixtureRequest, make_module_node: NodeFactory
) -> tuple[NodeProcess, dict[str, str]]:
    """A chamber (on SQLite, and on PostgreSQL when ARCHIPEL_TEST_POSTGRES_URL is set) with an
    administrator, a member with clearing access, a brick and an exchange (so that lists
    have items to check), and both tokens."""
    database = []
    if request.param == "postgresql":
        database = ["--database-url", request.getfixturevalue("postgres_database")]
    node = make_module_node(
        f"lille{request.param}", "--admin", "ada", "--admin-password", "ada pass 12", *database
    )
    node.cli("member", "add", "marie")
    node.cli("clearing", "grant", "marie", "--reason", "contract test")
    node.cli("clearing", "grant", "ada", "--reason", "contract test")
    tokens = {"member": node.token("marie"), "admin": node.token("ada")}
    brick = {
        "title": "Le jardin partagé",
        "category": "methode",
        "summary": "Comment ouvrir un jardin.",
        "body": "Trois saisons.",
    }
    assert node.api("POST", "/api/v1/bricks", tokens["member"], json=brick).status_code == 201
    exchange = {"beneficiary": "ada", "minutes": 30, "description": "Un coup de main"}
    answer = node.api("POST", "/api/v1/exchanges", tokens["member"], json=exchange)
    assert answer.status_code == 201, answer.text
    return node, tokens


#: The examples drawn for each (document, operation, mode), drawn once and sent by every run.
#: The draws are derandomized: for one document (each chamber's differs by its server URL
#: alone) they do not depend on the chamber, its database or the token, so the four runs drew
#: the very same examples four times over, and the draws cost more CPU than the requests
#: (checked with every test module collected, as in ``make test``: the four runs' 501 examples
#: were identical). None: the operation has nothing that can be made invalid.
_DRAWN: dict[tuple[str, str, GenerationMode], list[Case] | None] = {}


def _document(schema: Any) -> str:
    """The served document without its server (each chamber's own URL)."""
    raw = {key: value for key, value in schema.raw_schema.items() if key != "servers"}
    return json.dumps(raw, sort_keys=True)


def _drawn(document: str, operation: Any, mode: GenerationMode) -> list[Case] | None:
    """The bounded, derandomized examples of ``operation`` in ``mode`` (None: unsatisfiable)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    key = (document, operation.label, mode)
    if key not in _DRAWN:
        cases: list[Case] = []

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def draw(case: Case) -> None:
            cases.append(case)

        try:
            draw()
        except Unsatisfiable:
            _DRAWN[key] = None
        else:
            _DRAWN[key] = cases
    return _DRAWN[key]


def _copy(drawn: Case) -> Case:
    """A copy of ``drawn`` of its own, to send once (a call records what it sent in the case
    and its metadata)."""
    from schemathesis import Case
    from schemathesis.core import NotSet

    body = drawn.body if isinstance(drawn.body, NotSet) else copy.deepcopy(drawn.body)
    return Case(
        operation=drawn.operation,
        method=drawn.method,
        path=drawn.path,
        path_parameters=copy.deepcopy(drawn.path_parameters),
        headers=copy.deepcopy(drawn.headers),
        cookies=copy.deepcopy(drawn.cookies),
        query=copy.deepcopy(drawn.query),
        body=body,
        media_type=drawn.media_type,
        multipart_content_types=copy.deepcopy(drawn.multipart_content_types),
        meta=copy.deepcopy(drawn.meta),
    )


def _failures(schema: Any, token: str) -> list[str]:
    """Send every operation's examples, valid ones then invalid ones (those must answer a
    documented 4xx, never a 5xx); what failed, per operation (its first failing example)."""
    from schemathesis import GenerationMode

    checks = _checks()
    headers = {"Authorization": f"Bearer {token}"}
    base_url = schema.get_base_url()
    document = _document(schema)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases = _drawn(document, operation, mode)
            if cases is None:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to make invalid
                continue
            for drawn in cases:
                case = _copy(drawn)
                try:
                    case.call_and_validate(
                        base_url=base_url, headers=headers, checks=checks, timeout=30
                    )
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 -- each reported
                    failures.append(f"{operation.label} ({mode.value}): {case!r}\n{exc}")
                    break
    return failures


@pytest.mark.parametrize("who", ["member", "admin"])
def test_every_operation_keeps_its_contract(
    chamber: tuple[NodeProcess, dict[str, str]], who: str
) -> None:
    import schemathesis

    node, tokens = chamber
    schema = schemathesis.openapi.from_url(node.url + "/api/v1/openapi.json")
    operations = sum(1 for _ in schema.get_all_operations())
    assert operations >= 37  # all but GET /api/v1/openapi.json, which schemathesis skips
    failures = _failures(schema, tokens[who])
    assert not failures, "\n\n".join(failures) + "\n\n" + node.log_text()[-3000:]
