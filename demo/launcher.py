"""Real chambers as processes on 127.0.0.1: the one launcher of the demo and the federation
tests (``federation_tests/harness.py`` builds on it; nothing here imports pytest).

``archipel`` runs one CLI command; ``start_serve`` runs ``archipel serve`` until it answers
``/healthz``; ``start_worker`` runs an ``archipel worker``; ``stop`` ends either (SIGTERM,
then SIGKILL after a grace period), ``kill`` as a crash would.

Each command is a process of its own, with its own environment, arguments, output and exit
status, as ``python -m node.cli ARGS`` would be; but it is forked from a server that has
imported the node once (``multiprocessing``'s forkserver, single-threaded), instead of
starting a new interpreter that imports everything again: that import costs about a second
of CPU per command, and the federation tests run hundreds of commands. As with any
``multiprocessing`` start method but fork, the caller's main script is imported again in each
command (as ``__mp_main__``): it must keep its work under ``if __name__ == "__main__"`` (pytest,
the demo and ``python -m`` modules do).
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "HOST",
    "LaunchError",
    "NodeCommand",
    "archipel",
    "free_port",
    "http_get",
    "http_post",
    "http_request",
    "kill",
    "pauses",
    "port_is_free",
    "start_serve",
    "start_worker",
    "stop",
    "tls_context",
    "wait_for",
    "without_archipel_settings",
]

HOST = "127.0.0.1"


class LaunchError(RuntimeError):
    """A command failed, a process would not start, a wait timed out: the message says what
    (with the command's output or the end of the process's log)."""


#: Ports handed out by this process, never handed twice (a server may not be listening yet).
_HANDED_PORTS: set[int] = set()
_PORT_BLOCK = 2500


def _outgoing_ports_start() -> int:
    """Where Linux starts handing ports to outgoing connections (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port no server listens on, for a node about to start.

    It is taken *below* the range of outgoing connections' ports, so that no connection made
    meanwhile (by this process or any other) can take it before the node binds it; and in a
    block of its own for each pytest-xdist worker, so two workers never hand out the same one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % 4 if worker.isdigit() else 0
    start = max(1024, _outgoing_ports_start() - 4 * _PORT_BLOCK) + index * _PORT_BLOCK
    offset = random.randrange(_PORT_BLOCK)
    for step in range(_PORT_BLOCK):
        port = start + (offset + step) % _PORT_BLOCK
        if port not in _HANDED_PORTS and port_is_free(port):
            _HANDED_PORTS.add(port)
            return port
    raise RuntimeError(f"no free port between {start} and {start + _PORT_BLOCK}")


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


def pauses(first: float = 0.02, longest: float = 0.2) -> Iterator[float]:
    """The pauses between two looks at something awaited: short at first (most things come
    within tens of milliseconds), then half as long again each time, up to ``longest`` (each
    look costs a request to a node)."""
    pause = first
    while True:
        yield pause
        pause = min(longest, pause * 1.5)


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "",
    *,
    stopping: threading.Event | None = None,
    error: type[Exception] = LaunchError,
    interval: float | None = None,
) -> Any:
    """Poll ``condition`` until it returns something true; that value. Raises ``error`` when
    ``timeout`` seconds pass or ``stopping`` is set. Between looks: ``interval`` seconds, or
    ``pauses()`` when none is given."""
    deadline = time.monotonic() + timeout
    pause = itertools.repeat(interval) if interval is not None else pauses()
    while True:
        value = condition()
        if value:
            return value
        if stopping is not None and stopping.is_set():
            raise error(f"stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(next(pause))


@functools.cache
def tls_context() -> ssl.SSLContext:
    """This process's one verifying TLS context for requests to local nodes."""
    return httpx.create_ssl_context()


def http_request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.request`` for a node on this machine: the same (a client of its own, a new
    connection, no cookie kept), with no proxy from the environment and this process's one
    TLS context. ``httpx.request`` makes a TLS context per call, whose CA bundle costs about
    20 ms of CPU, and the demo and the tests make thousands of requests (polling included)."""
    kwargs.setdefault("trust_env", False)
    return httpx.request(method, url, verify=tls_context(), **kwargs)


def http_get(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.get`` as ``http_request`` makes it."""
    return http_request("GET", url, **kwargs)


def http_post(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.post`` as ``http_request`` makes it."""
    return http_request("POST", url, **kwargs)


def without_archipel_settings(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without the caller's ``ARCHIPEL_*`` settings (an
    ``ARCHIPEL_DATABASE_URL`` left in the shell would put every chamber in one database) and
    with no proxy for 127.0.0.1, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), HOST, "localhost"]))
    return {**env, "NO_PROXY": no_proxy, "no_proxy": no_proxy, **extra}


#: What the command server imports before it forks (a module missing here is imported by
#: each command): the node and what its commands would do at each start
#: (``demo.command_server``), and this module (each command's target).
_PRELOAD = ["demo.command_server", __name__]


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    preload = list(_PRELOAD)
    if "_pytest.config" in sys.modules:
        # each command runs the caller's main script again (see the module's note): pytest's
        # imports _pytest.config, about 20 ms of CPU per command unless the server has it
        preload.append("_pytest.config")
    context.set_forkserver_preload(preload)
    return context


def _run_command(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    stdout: str,
    stderr: str,
    new_session: bool,
) -> None:
    """In the forked process: the environment, directory and output files of the command,
    then ``archipel ARGV`` (its exit status is the process's)."""
    if new_session:
        os.setsid()
    # Daemonic for the parent (which ends it with its run), but free to start processes of
    # its own: `serve --workers N` runs N server processes under uvicorn's supervisor.
    multiprocessing.current_process().daemon = False
    # multiprocessing closed the standard input (fd 0): give it /dev/null again, as a
    # command's children (uvicorn's server processes) expect to inherit one
    null = os.open(os.devnull, os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own standard input
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)
    from node.cli import main

    sys.argv = ["archipel", *argv]
    try:
        code = main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(code)


#: ``multiprocessing`` reads a child's exit status from a pipe that any thread polling the
#: child reads too (``Process.start`` polls every child still running): when two threads read
#: it at once, one gets the status and the other an end of file, which ``multiprocessing``
#: reports as exit status 255 (a command that succeeded, "failed" with an empty stderr: the
#: demo builds its chambers from several threads). Every start and poll of a command holds
#: this lock; waiting for its end does not.
_REAPING = threading.Lock()


class NodeCommand:
    """A running ``archipel`` command, with the parts of ``subprocess.Popen`` the launcher's
    callers use (``poll``, ``wait``, ``terminate``, ``kill``, ``send_signal``, ``pid``); safe
    to use from several threads."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        stdout: Path,
        stderr: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.args = ["archipel", *argv]
        self._process: BaseProcess = _context().Process(
            target=_run_command,
            args=(list(argv), dict(env), os.getcwd(), str(stdout), str(stderr or stdout)),
            kwargs={"new_session": new_session},
            name=f"archipel {argv[0] if argv else ''}",
            # a node a test forgot is ended with its test run instead of keeping it waiting
            daemon=True,
        )
        with _REAPING:
            self._process.start()

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        with _REAPING:
            return self._process.exitcode  # reads the status once it has come (no waiting)

    def wait(self, timeout: float | None = None) -> int:
        if not multiprocessing.connection.wait([self._process.sentinel], timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        code = self.poll()
        assert code is not None  # the sentinel is ready: the status is in (or the server died)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def archipel(*argv: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``archipel ARGV...`` (a process of its own, see the module's note); its output.
    Raises ``LaunchError`` with the output if it fails."""
    with tempfile.TemporaryDirectory(prefix="archipel-command-") as outputs:
        stdout, stderr = Path(outputs, "stdout"), Path(outputs, "stderr")
        command = NodeCommand(
            argv, env=dict(os.environ if env is None else env), stdout=stdout, stderr=stderr
        )
        try:
            code = command.wait(timeout=120)
        except subprocess.TimeoutExpired:
            command.kill()
            command.wait()
            raise
        out = stdout.read_text() if stdout.exists() else ""
        err = stderr.read_text() if stderr.exists() else ""
    if code != 0:
        raise LaunchError(f"archipel {' '.join(argv)} failed (exit status {code}):\n{out}\n{err}")
    return out


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
) -> NodeCommand:
    """``archipel serve`` on ``HOST:port``, its output appended to ``log_path`` (after a line
    ``--- start NOTE``), once it answers ``/healthz``. ``new_session`` keeps a Ctrl-C meant
    for the caller from reaching it; ``stopping`` gives up the wait."""
    with log_path.open("ab") as log:
        log.write(f"--- start {note}\n".encode())
    process = NodeCommand(
        [
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
        env=env,
        stdout=log_path,
        new_session=new_session,
    )
    deadline, pause = time.monotonic() + timeout, pauses(longest=0.1)
    while stopping is None or not stopping.is_set():
        if process.poll() is not None:
            raise LaunchError(f"{name} exited at start; its log:\n{_log_tail(log_path)}")
        try:
            health = http_get(f"http://{HOST}:{port}/healthz", timeout=1.0)
            if health.status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            kill(process)  # nobody else holds it: it would outlive the caller
            raise LaunchError(f"{name} did not answer in {timeout:.0f}s:\n{_log_tail(log_path)}")
        time.sleep(next(pause))
    return process


def start_worker(
    data_dir: Path,
    log_path: Path,
    *,
    env: Mapping[str, str],
    note: str = "",
) -> NodeCommand:
    """``archipel worker`` on ``data_dir``'s jobs, its output appended to ``log_path`` (after
    a line ``--- start NOTE``). There is nothing to wait for: it claims due jobs at once."""
    with log_path.open("ab") as log:
        log.write(f"--- start {note}\n".encode())
    return NodeCommand(
        ["worker", "--data-dir", str(data_dir), "--log-level", "warning"],
        env=env,
        stdout=log_path,
    )


def stop(process: NodeCommand | None, grace: float = 15.0) -> None:
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


def kill(process: NodeCommand | None) -> None:
    """SIGKILL: no shutdown handler runs, as in a crash."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
