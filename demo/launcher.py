"""Real chambers as processes on 127.0.0.1: the one launcher of the demo and the federation
tests (``federation_tests/harness.py`` builds on it; nothing here imports pytest).

``archipel`` runs one CLI command; ``start_serve`` runs ``archipel serve`` until it answers
``/healthz``; ``start_worker`` runs an ``archipel worker``; ``stop`` ends either (SIGTERM,
then SIGKILL after a grace period), ``kill`` as a crash would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "HOST",
    "LaunchError",
    "archipel",
    "free_port",
    "kill",
    "port_is_free",
    "start_serve",
    "start_worker",
    "stop",
    "wait_for",
    "without_archipel_settings",
]

HOST = "127.0.0.1"


class LaunchError(RuntimeError):
    """A command failed, a process would not start, a wait timed out: the message says what
    (with the command's output or the end of the process's log)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (as uvicorn does, with SO_REUSEADDR: the
    connections of a server just stopped, in TIME_WAIT, do not hold the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "",
    *,
    stopping: threading.Event | None = None,
    error: type[Exception] = LaunchError,
) -> Any:
    """Poll ``condition`` until it returns something true; that value. Raises ``error`` when
    ``timeout`` seconds pass or ``stopping`` is set."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if stopping is not None and stopping.is_set():
            raise error(f"stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def without_archipel_settings(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without the caller's ``ARCHIPEL_*`` settings (an
    ``ARCHIPEL_DATABASE_URL`` left in the shell would put every chamber in one database) and
    with no proxy for 127.0.0.1, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), HOST, "localhost"]))
    return {**env, "NO_PROXY": no_proxy, "no_proxy": no_proxy, **extra}


def archipel(*argv: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``archipel ARGV...`` with this interpreter; its output. Raises ``LaunchError`` with
    the output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", *argv],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=120,
    )
    if result.returncode != 0:
        raise LaunchError(f"archipel {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _log_tail(log_path: Path, chars: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-chars:] if log_path.exists() else ""


def start_serve(
    name: str,
    data_dir: Path,
    port: int,
    log_path: Path,
    *,
    env: Mapping[str, str],
    serve_args: tuple[str, ...] = (),
    timeout: float = 30.0,
    new_session: bool = False,
    stopping: threading.Event | None = None,
    note: str = "",
) -> subprocess.Popen[bytes]:
    """``archipel serve`` on ``HOST:port``, its output appended to ``log_path`` (after a line
    ``--- start NOTE``), once it answers ``/healthz``. ``new_session`` keeps a Ctrl-C meant
    for the caller from reaching it; ``stopping`` gives up the wait."""
    with log_path.open("ab") as log:
        log.write(f"--- start {note}\n".encode())
        log.flush()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                HOST,
                "--port",
                str(port),
                "--log-level",
                "warning",
                *serve_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=new_session,
        )
    deadline = time.monotonic() + timeout
    while stopping is None or not stopping.is_set():
        if process.poll() is not None:
            raise LaunchError(f"{name} exited at start; its log:\n{_log_tail(log_path)}")
        try:
            health = httpx.get(f"http://{HOST}:{port}/healthz", timeout=1.0, trust_env=False)
            if health.status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            kill(process)  # nobody else holds it: it would outlive the caller
            raise LaunchError(f"{name} did not answer in {timeout:.0f}s:\n{_log_tail(log_path)}")
        time.sleep(0.1)
    return process


def start_worker(
    data_dir: Path,
    log_path: Path,
    *,
    env: Mapping[str, str],
    note: str = "",
) -> subprocess.Popen[bytes]:
    """``archipel worker`` on ``data_dir``'s jobs, its output appended to ``log_path`` (after
    a line ``--- start NOTE``). There is nothing to wait for: it claims due jobs at once."""
    with log_path.open("ab") as log:
        log.write(f"--- start {note}\n".encode())
        log.flush()
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "worker",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
        )


def stop(process: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """SIGTERM (the server finishes its requests and its worker's current job), then SIGKILL
    if it has not ended after ``grace`` seconds."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: no shutdown handler runs, as in a crash."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
