"""Structured logs: one JSON object per line, an access record per request."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from demo.launcher import http_get, pauses, wait_for
from node.cli import main
from node.ops.logs import JsonFormatter, logging_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_json_formatter_writes_one_object_with_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.ops.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("delivery to %s failed", "gand.example", extra={"job": 7})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("with a traceback\non two lines")
    finally:
        logger.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    entry = json.loads(first)
    assert entry["level"] == "warning" and entry["logger"] == "test.ops.json"
    assert entry["message"] == "delivery to gand.example failed" and entry["job"] == 7
    assert entry["time"].endswith("+00:00")
    assert "RuntimeError: boom" in json.loads(second)["exception"]
    with pytest.raises(ValueError):
        logging_config("xml")


async def test_each_request_writes_an_access_record(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="node.access"):
        await client.get("/healthz")
    record = next(r for r in caplog.records if r.name == "node.access")
    line = json.loads(JsonFormatter().format(record))
    assert line["method"] == "GET" and line["path"] == "/healthz" and line["status"] == 200
    assert line["duration_ms"] >= 0 and line["message"].startswith("GET /healthz 200")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_writes_json_lines_and_trusts_its_proxy(tmp_path: Path) -> None:
    """A real ``archipel serve --proxy-headers`` with ``log_format = json``: the access line
    is JSON, and the client address comes from X-Forwarded-For sent by a trusted proxy."""
    data, port = tmp_path / "data", _free_port()
    env = {**os.environ, "ARCHIPEL_LOG_FORMAT": "json", "ARCHIPEL_TRUSTED_PROXIES": "127.0.0.1"}
    assert main(["init", "--data-dir", str(data), "--url", f"http://127.0.0.1:{port}",
                 "--name", "Lille", "--allow-private-addresses"]) == 0  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--data-dir", str(data), "--port", str(port),
         "--proxy-headers"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        deadline, pause = time.monotonic() + 30, pauses()
        while True:
            try:
                response = http_get(
                    f"http://127.0.0.1:{port}/healthz",
                    headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
                )
                break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(next(pause))
        assert response.status_code == 200
        wait_for(  # written once the answer has gone
            lambda: "node.access" in (tmp_path / "serve.log").read_text(),
            10,
            "the access line",
            error=AssertionError,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    lines = (tmp_path / "serve.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    access = [e for e in entries if e["logger"] == "node.access" and e["path"] == "/healthz"]
    assert access, lines
    assert access[0]["status"] == 200 and access[0]["client"] == "203.0.113.7"
    assert any(e["logger"].startswith("uvicorn") for e in entries)
