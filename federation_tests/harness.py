"""Real chamber nodes as separate processes on 127.0.0.1, each with its own data dir and port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["NodeProcess", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def archipel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``archipel`` CLI of this interpreter; raise with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"archipel {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class NodeProcess:
    """One chamber: ``init`` once, then ``start``/``stop``/``kill`` its ``serve`` process."""

    name: str
    root: Path
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    #: Fast retries and short job leases, so that recovery shows within a test's patience.
    env: dict[str, str] = field(
        default_factory=lambda: {
            "ARCHIPEL_RETRY_BASE_SECONDS": "0.5",
            "ARCHIPEL_JOB_LEASE_SECONDS": "3",
        }
    )

    @property
    def data_dir(self) -> Path:
        return self.root / self.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def init(self, *extra: str) -> None:
        args = [
            "init",
            "--data-dir",
            str(self.data_dir),
            "--url",
            self.url,
            "--name",
            f"Chambre de {self.name.title()}",
            "--chamber-username",
            self.name,
            "--allow-private-addresses",
            *extra,
        ]
        if self.database_url:
            args += ["--database-url", self.database_url]
        archipel(*args)

    def cli(self, *args: str) -> str:
        """``archipel COMMAND [SUBCOMMAND] --data-dir DIR ARGS...`` for this node."""
        words = list(args)
        split = 2 if words[0] in ("member", "token", "block", "admin", "clearing") else 1
        return archipel(
            *words[:split], "--data-dir", str(self.data_dir), *words[split:], env=self.env
        ).stdout

    def token(self, username: str) -> str:
        return self.cli("token", "create", username).strip()

    def start(self, timeout: float = 30.0) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not answer in {timeout}s:\n{self.log_path.read_text()}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
