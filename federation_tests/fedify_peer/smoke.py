#!/usr/bin/env python3
"""Smoke test of the Fedify interop peer: two peers federate over loopback http.

Run:  /work/main/.venv/bin/python federation_tests/fedify_peer/smoke.py
Runs install.sh, starts peer A (alice) and peer B (alice, bob) on free ports, then:
follow (handle lookup, Accept back), Create with each HTTP signature scheme, delivery to
followers, rejection of an unsigned and of a tampered delivery, duplicate suppression,
Undo(Follow).  Exit code 0 when every check passed.  Bounded in time; cleans up.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
RFC9421 = "rfc9421"
CAVAGE = "draft-cavage-http-signatures-12"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    def __init__(self, node: str, name: str, actors: str, logdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = logdir / f"peer-{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [node, str(HERE / "peer.mjs"), "--port", str(self.port), "--actors", actors],
            cwd=HERE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"peer {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                r = self.http.get("/_control/health")
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"peer {self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = self.http.post(path, json=body)
        return r.status_code, r.json()

    def log_tail(self, n: int = 40) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report and go on
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)


def received(peer: Peer, **params: Any) -> list[dict[str, Any]]:
    return peer.get("/_control/received", **params)


def main() -> int:
    install = subprocess.run(
        ["bash", str(HERE / "install.sh")], capture_output=True, text=True, timeout=900
    )
    if install.returncode != 0:
        print(install.stderr, file=sys.stderr)
        print(f"install.sh failed ({install.returncode})", file=sys.stderr)
        return 1
    node = install.stdout.strip().splitlines()[-1]
    print(f"node: {node}", flush=True)

    logdir = Path(tempfile.mkdtemp(prefix="fedify-peer-smoke-"))
    a = Peer(node, "A", "alice", logdir)
    b = Peer(node, "B", "alice,bob", logdir)
    c = Checks()
    try:
        ha, hb = a.wait_ready(), b.wait_ready()
        assert ha["fedify"] == "2.3.6" and ha["node"].startswith("v22."), ha
        alice_a = ha["actors"]["alice"]["id"]
        bob_b = hb["actors"]["bob"]["id"]
        bob_handle = hb["actors"]["bob"]["handle"]
        print(f"A={a.base}  B={b.base}  logs in {logdir}", flush=True)

        def follow() -> None:
            status, res = a.post("/_control/follow", {"target": bob_handle})
            assert status == 200 and res["ok"], res
            assert res["target"] == bob_b, res
            assert res["attempts"][0]["status"] == 202, res["attempts"]
            rec = wait_for("Follow at B", lambda: received(b, type="Follow"))[-1]
            assert rec["fedify"]["verified"] is True and rec["fedify"]["listener"] == "Follow", rec[
                "fedify"
            ]
            assert rec["http_signature"]["verified"] is True, rec["http_signature"]
            assert rec["proof"]["present"] and rec["proof"]["verified"] is True, rec["proof"]
            wait_for(
                "alice@A in bob@B's followers",
                lambda: any(f["id"] == alice_a for f in b.get("/_control/followers", actor="bob")),
            )
            wait_for(
                "Accept at A",
                lambda: any(
                    f["id"] == bob_b and f["state"] == "accepted"
                    for f in a.get("/_control/following")
                ),
            )
            acc = received(a, type="Accept")[-1]
            assert (
                acc["fedify"]["verified"] is True and acc["http_signature"]["verified"] is True
            ), acc

        c.run("follow by handle over loopback http, auto-Accept comes back", follow)

        def create_with(spec: str) -> Callable[[], None]:
            def check() -> None:
                text = f"hello bob, signed with {spec}"
                status, res = a.post(
                    "/_control/send",
                    {"to": bob_b, "activity": "Create", "content": text, "specVersion": spec},
                )
                assert status == 200 and res["ok"], res
                assert [(x["scheme"], x["status"]) for x in res["attempts"]] == [(spec, 202)], res[
                    "attempts"
                ]
                rec = wait_for(
                    "Create at B",
                    lambda: [
                        r for r in received(b, type="Create") if r["id"] == res["activity_id"]
                    ],
                )[0]
                assert rec["raw"]["object"]["content"] == text, rec["raw"]
                assert rec["recipient"] == "bob", rec
                assert rec["fedify"]["status"] == 202 and rec["fedify"]["verified"] is True, rec[
                    "fedify"
                ]
                assert rec["fedify"]["listener"] == "Create", rec["fedify"]
                sig = rec["http_signature"]
                assert (
                    sig["scheme"] == spec
                    and sig["verified"] is True
                    and sig["key_id"] == alice_a + "#main-key"
                ), sig
                assert rec["proof"]["verified"] is True, rec["proof"]
                assert rec["proof"]["proofs"][0]["cryptosuite"] == "eddsa-jcs-2022", rec["proof"]
                # the Note is dereferenceable at A
                note = httpx.get(
                    res["object_id"], headers={"Accept": "application/activity+json"}, timeout=10
                )
                assert note.status_code == 200 and note.json()["content"] == text, note.text

            return check

        c.run("Create(Note) signed RFC 9421 verified at B", create_with(RFC9421))
        c.run("Create(Note) signed draft-cavage verified at B", create_with(CAVAGE))

        def to_followers() -> None:
            status, res = b.post(
                "/_control/send",
                {"actor": "bob", "to": "followers", "content": "to my followers", "public": True},
            )
            assert status == 200 and res["ok"], res
            rec = wait_for(
                "Create at A",
                lambda: [r for r in received(a, type="Create") if r["id"] == res["activity_id"]],
            )[0]
            assert rec["fedify"]["verified"] is True and rec["recipient"] in ("alice", None), rec
            assert "https://www.w3.org/ns/activitystreams#Public" in json.dumps(rec["raw"]), rec[
                "raw"
            ]

        c.run("bob@B posts to followers, alice@A gets it", to_followers)

        def unsigned_rejected() -> None:
            act = {
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{alice_a}/forged/1",
                "type": "Create",
                "actor": alice_a,
                "object": {"type": "Note", "content": "forged"},
            }
            r = httpx.post(
                f"{b.base}/users/bob/inbox",
                content=json.dumps(act),
                headers={"Content-Type": "application/activity+json"},
                timeout=10,
            )
            assert r.status_code == 401, (r.status_code, r.text)
            rec = [x for x in received(b) if x["id"] == act["id"]][-1]
            assert rec["fedify"]["verified"] is False and rec["fedify"]["listener"] is None, rec[
                "fedify"
            ]
            assert (
                rec["http_signature"]["present"] is False
                and rec["http_signature"]["reason"]["type"] == "noSignature"
            ), rec

        c.run("unsigned delivery refused (401) and recorded as unverified", unsigned_rejected)

        def replayed_and_tampered() -> None:
            orig = [
                r for r in received(b, type="Create") if r["http_signature"]["scheme"] == RFC9421
            ][0]
            headers = dict(orig["headers"])
            # Same bytes as Fedify's JSON.stringify, so Content-Digest and signatures still match.
            body = json.dumps(orig["raw"], separators=(",", ":"), ensure_ascii=False).encode()
            r = httpx.post(f"{b.base}/users/bob/inbox", content=body, headers=headers, timeout=10)
            assert r.status_code == 202, (r.status_code, r.text)
            dup = received(b)[-1]
            assert dup["fedify"].get("duplicate") is True and dup["fedify"]["listener"] is None, (
                dup["fedify"]
            )
            assert dup["http_signature"]["verified"] is True, dup["http_signature"]
            tampered = json.loads(body)
            tampered["object"]["content"] = "tampered"
            r2 = httpx.post(
                f"{b.base}/users/bob/inbox",
                content=json.dumps(tampered, separators=(",", ":")),
                headers=headers,
                timeout=10,
            )
            assert r2.status_code == 401, (r2.status_code, r2.text)
            last = received(b)[-1]
            assert last["fedify"]["verified"] is False and last["fedify"]["listener"] is None, last[
                "fedify"
            ]
            assert last["http_signature"]["verified"] is False, last["http_signature"]
            assert last["proof"]["verified"] is False, last["proof"]

        c.run(
            "exact replay deduplicated (202, no listener); tampered body refused (401)",
            replayed_and_tampered,
        )

        def unfollow() -> None:
            status, res = a.post("/_control/unfollow", {"target": bob_b})
            assert status == 200 and res["ok"], res
            wait_for(
                "follower removed at B",
                lambda: (
                    not any(f["id"] == alice_a for f in b.get("/_control/followers", actor="bob"))
                ),
            )
            rec = received(b, type="Undo")[-1]
            assert rec["fedify"]["verified"] is True and rec["raw"]["object"]["type"] == "Follow", (
                rec
            )

        c.run("Undo(Follow) removes the follower", unfollow)
    except Exception as e:  # noqa: BLE001
        c.failed += 1
        print(f"FAIL setup: {type(e).__name__}: {e}", flush=True)
    finally:
        if c.failed:
            for p in (a, b):
                print(
                    f"--- last log lines of peer {p.name} ({p.log_path}) ---\n{p.log_tail()}",
                    flush=True,
                )
        a.stop()
        b.stop()
    print(f"smoke: {c.passed} passed, {c.failed} failed", flush=True)
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
