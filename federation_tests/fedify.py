"""The Fedify interop peer (``fedify_peer/``) as pytest fixtures: install once, a peer per test.

Import ``fedify_node_binary_fixture`` and ``fedify_peer_fixture`` into a test module to use the
fixtures ``fedify_node_binary`` and ``fedify_peer``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from federation_tests import harness
from federation_tests.harness import free_port, http_get, http_post, pauses

PEER_DIR = Path(__file__).resolve().parent / "fedify_peer"
#: Node keeps the code it compiled from Fedify's modules here (beside the runtime install.sh
#: made): a peer then starts in about half a second of CPU instead of a second.
NODE_ENV = {"NODE_COMPILE_CACHE": str(PEER_DIR / ".runtime" / "compile-cache")}
CONTEXTS = Path(__file__).resolve().parents[1] / "node" / "activitypub" / "contexts"


def read_with_fedify(node_binary: str, script: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What Fedify's own vocabulary makes of ``obj``: ``script`` (a module beside this file)
    parses it with our bundled JSON-LD contexts and prints what it read, as JSON."""
    from node.activitypub.jsonld import CONTEXT_FILES

    contexts = {
        url: json.loads((CONTEXTS / name).read_text()) for url, name in CONTEXT_FILES.items()
    }
    result = subprocess.run(
        [node_binary, "--input-type=module", "-e", Path(__file__).with_name(script).read_text()],
        input=json.dumps({"object": obj, "contexts": contexts}),
        capture_output=True,
        text=True,
        cwd=PEER_DIR,
        env={**os.environ, **NODE_ENV},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


__all__ = [
    "FedifyPeer",
    "fedify_node_binary_fixture",
    "fedify_peer_fixture",
    "fedify_peer_process_fixture",
    "read_with_fedify",
    "wait_for",
]


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something true (see ``harness.wait_for``)."""
    return harness.wait_for(condition, timeout, what)


@dataclass
class FedifyPeer:
    """A running ``peer.mjs``; ``get``/``post`` talk to its ``/_control/`` API."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    health: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def actor(self, name: str = "alice") -> dict[str, str]:
        return dict(self.health["actors"][name])

    def get(self, route: str, **params: Any) -> Any:
        response = http_get(f"{self.url}/_control/{route}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, route: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = http_post(f"{self.url}/_control/{route}", json=body, timeout=60)
        return response.status_code, response.json()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session", name="fedify_node_binary")
def fedify_node_binary_fixture() -> str:
    """The Node 22 binary ``install.sh`` installed (``make test`` runs it); the Fedify tests
    are skipped, with the reason printed, where it is not installed."""
    try:
        result = subprocess.run(
            ["bash", str(PEER_DIR / "install.sh"), "--check"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"fedify_peer/install.sh could not run: {exc}")
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        reason = (
            f"the Fedify peer is not installed (install.sh --check exit {result.returncode}): "
            f"{result.stderr.strip()[-800:]}"
        )
        print(f"\nFedify tests skipped: {reason}")
        pytest.skip(reason)
    return lines[-1]


@pytest.fixture(scope="module", name="fedify_peer_process")
def fedify_peer_process_fixture(
    fedify_node_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FedifyPeer]:
    """The peer of a module's tests, started once (``fedify_peer`` hands it to each test as
    new); its actors' keys are the test run's (made by its first peer), so that it generates
    no RSA key of its own."""
    keys = tmp_path_factory.getbasetemp() / "fedify-peer-keys.json"
    port = free_port()
    log_path = tmp_path_factory.mktemp("fedify-peer") / "fedify-peer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                fedify_node_binary,
                str(PEER_DIR / "peer.mjs"),
                "--port",
                str(port),
                "--keys",
                str(keys),
            ],
            cwd=PEER_DIR,
            env={**os.environ, **NODE_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    peer = FedifyPeer(process=process, port=port, log_path=log_path)
    try:
        deadline, pause = time.monotonic() + 30, pauses(longest=0.1)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"fedify peer exited ({process.returncode}):\n{peer.log_tail()}")
            try:
                response = http_get(f"{peer.url}/_control/health", timeout=1.0)
                if response.status_code == 200:
                    peer.health = response.json()
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"fedify peer not ready after 30s:\n{peer.log_tail()}")
            time.sleep(next(pause))
        yield peer
    finally:
        peer.stop()


@pytest.fixture(name="fedify_peer")
def fedify_peer_fixture(fedify_peer_process: FedifyPeer) -> FedifyPeer:
    """The module's peer as if new: it forgets everything it received, sent, followed and
    held (``/_control/forget``; its actors and keys stay). Each test makes chambers of its
    own, on ports never handed out before, so nothing the peer cached applies to them."""
    peer = fedify_peer_process
    if peer.process.poll() is not None:
        raise RuntimeError(f"fedify peer exited ({peer.process.returncode}):\n{peer.log_tail()}")
    status, answer = peer.post("forget", {})
    assert status == 200, answer
    return peer
