"""Real chambers on 127.0.0.1 for the demo: ``archipel`` commands and ``serve`` processes.

Started by ``demo.launcher``, the launcher the federation tests use too: each chamber has a
data directory ``ROOT/NAME``, a log ``ROOT/NAME.log`` and a fixed port. The ``serve``
processes run in their own session, so that Ctrl-C reaches the demo only and the demo stops
them one by one (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from demo import launcher
from demo.launcher import HOST, free_port, port_is_free

__all__ = ["Chamber", "DemoError", "free_port", "port_is_free", "stop_all", "wait_for"]

#: Set when the demo is asked to stop: a chamber still starting gives up.
STOPPING = threading.Event()
#: Quick retries, so that a delivery that failed (a chamber restarting) arrives within seconds.
NODE_ENV = {"ARCHIPEL_RETRY_BASE_SECONDS": "1", "ARCHIPEL_JOB_LEASE_SECONDS": "5"}

#: Something the person running the demo must read (a command failed, a port is taken).
DemoError = launcher.LaunchError

#: Poll a condition until it holds; gives up when the demo is asked to stop.
wait_for: Callable[..., Any] = partial(launcher.wait_for, stopping=STOPPING)


def _environment() -> dict[str, str]:
    """The chambers' environment: the caller's ``ARCHIPEL_*`` settings left out, no proxy."""
    return launcher.without_archipel_settings(NODE_ENV)


@dataclass
class Chamber:
    """One chamber: its ``archipel`` commands, its ``serve`` process and its JSON API."""

    name: str  # also the chamber actor's username: @lille@127.0.0.1:8101
    title: str
    description: str
    language: str
    port: int
    root: Path
    #: (username, display name); the first one is the chamber's administrator.
    members: list[tuple[str, str]]
    tokens: dict[str, str] = field(default_factory=dict)
    process: launcher.NodeCommand | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / self.name

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def admin(self) -> str:
        return self.members[0][0]

    @property
    def handle(self) -> str:
        """The chamber actor's handle, what another chamber's administrator types."""
        return self.member_handle(self.name)

    def member_handle(self, username: str) -> str:
        return f"@{username}@{HOST}:{self.port}"

    def actor(self, username: str | None = None) -> str:
        return f"{self.url}/actors/{username or self.name}"

    # -- the operator's commands ---------------------------------------------------------

    def archipel(self, command: str, *args: str) -> str:
        """``archipel COMMAND --data-dir DIR ARGS...`` (``command`` may be ``"member add"``);
        its output. Raises with the output when it fails."""
        argv = [*command.split(), "--data-dir", str(self.data_dir), *args]
        try:
            return launcher.archipel(*argv, env=_environment())
        except launcher.LaunchError as exc:
            raise DemoError(f"{self.name}: {exc}") from None

    def init(self, password: str) -> None:
        """``archipel init`` with the first member as administrator, then the other members,
        clearing access for all (granted by hand: the chamber's rule asks for a published
        brick first) and an API token for each."""
        admin = self.admin
        self.archipel(
            "init",
            "--url",
            self.url,
            "--name",
            self.title,
            "--description",
            self.description,
            "--chamber-username",
            self.name,
            "--language",
            self.language,
            "--allow-private-addresses",
            "--admin",
            admin,
            "--admin-password",
            password,
        )
        for username, display_name in self.members[1:]:
            self.archipel(
                "member add", username, "--password", password, "--display-name", display_name
            )
        for username, _ in self.members:
            self.archipel("clearing grant", username, "--reason", "membre de la démo")
            self.tokens[username] = self.archipel("token create", username).strip()

    # -- the process -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Run ``archipel serve`` until it answers ``/healthz``."""
        self.process = launcher.start_serve(
            self.name,
            self.data_dir,
            self.port,
            self.log_path,
            env=_environment(),
            timeout=timeout,
            new_session=True,
            stopping=STOPPING,
        )

    def terminate(self) -> None:
        """SIGTERM: the server finishes its requests and its worker's current job."""
        if self.running:
            assert self.process is not None
            self.process.terminate()

    def wait_stopped(self, grace: float = 15.0) -> None:
        """Wait for the end of the process; SIGKILL after ``grace`` seconds."""
        launcher.stop(self.process, grace)

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    # -- the JSON API ------------------------------------------------------------------------

    def api(self, method: str, path: str, as_user: str | None = None, **kwargs: Any) -> Any:
        """A JSON API call (as the member ``as_user``, with their token); the decoded answer.
        Raises with the node's answer on an error status."""
        headers = dict(kwargs.pop("headers", None) or {})
        if as_user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[as_user]}"
        response = launcher.http_request(
            method, self.url + path, headers=headers, timeout=30, **kwargs
        )
        if response.status_code >= 400:
            raise DemoError(
                f"{method} {path} on {self.name}"
                f"{f' as {as_user}' if as_user else ''}: {response.status_code} {response.text}"
            )
        return response.json() if response.content else None


def stop_all(chambers: list[Chamber], grace: float = 15.0) -> None:
    """Ask every chamber to stop at once, then wait for each."""
    STOPPING.set()
    for chamber in chambers:
        chamber.terminate()
    for chamber in chambers:
        chamber.wait_stopped(grace)
