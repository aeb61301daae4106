"""The documented reverse proxy, for real: Caddy (from Debian's packages) with TLS from its
internal CA, in front of ``archipel serve`` started with the flags of the systemd unit.

The site block is ``deploy/caddy-site.Caddyfile`` (host and upstream port replaced), the
``serve`` flags and environment are ``deploy/systemd/archipel-web.service``'s: what a
self-hosted chamber runs. Two clients on different loopback addresses go through Caddy over
HTTPS; the node's access log must show each one's own address and the ``https`` scheme,
not Caddy's address and plain ``http`` (what every visitor looked like before the unit
passed ``--proxy-headers``).

``caddy`` is installed by ``.ci/run`` (``apt-get install caddy``); without it the test is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from federation_tests.harness import NodeProcess, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "deploy" / "caddy-site.Caddyfile"
UNIT = ROOT / "deploy" / "systemd" / "archipel-web.service"
CLIENTS = ("127.0.0.2", "127.0.0.3")

pytestmark = pytest.mark.federation


def unit_serve_options(unit: Path = UNIT) -> tuple[list[str], dict[str, str]]:
    """The unit's ``serve`` flags (without data dir, host and port, which the test chooses)
    and its ``Environment=`` (without the data dir)."""
    flags: list[str] = []
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            for assignment in shlex.split(value):
                name, _, setting = assignment.partition("=")
                env[name] = setting
        elif key == "ExecStart":
            words = shlex.split(value)
            rest = words[words.index("serve") + 1 :]
            while rest:
                word = rest.pop(0)
                if word in ("--data-dir", "--host", "--port"):
                    rest.pop(0)
                else:
                    flags.append(word)
    env.pop("ARCHIPEL_DATA_DIR", None)
    return flags, env


def caddyfile(public_port: int, http_port: int, inner_port: int, storage: Path) -> str:
    """The documented site block, served on 127.0.0.1 with Caddy's internal CA."""
    site = SITE.read_text()
    assert "lille.example {" in site and "127.0.0.1:8000" in site, "the documented site changed"
    site = site.replace("lille.example {", f"https://127.0.0.1:{public_port} {{\n\ttls internal")
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{inner_port}")
    return (
        "{\n"
        "\tadmin off\n"
        "\tlocal_certs\n"
        "\tskip_install_trust\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {public_port}\n"
        "\tauto_https disable_redirects\n"
        f"\tstorage file_system {{\n\t\troot {storage}\n\t}}\n"
        "}\n" + site
    )


class Caddy:
    """``caddy run`` with a generated Caddyfile; its state (CA, certificates) in ``root``."""

    def __init__(self, binary: str, root: Path, config: str) -> None:
        self.root = root
        self.storage = root / "storage"
        root.mkdir(parents=True, exist_ok=True)
        (root / "Caddyfile").write_text(config)
        self.log_path = root / "caddy.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "run", "--config", str(root / "Caddyfile"), "--adapter", "caddyfile"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "HOME": str(root),
                    "XDG_DATA_HOME": str(root / "data"),
                    "XDG_CONFIG_HOME": str(root / "config"),
                },
            )

    @property
    def root_certificate(self) -> Path:
        return self.storage / "pki" / "authorities" / "local" / "root.crt"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tls(self) -> ssl.SSLContext:
        """Trusts Caddy's internal root CA only (waits until Caddy has made it)."""

        def made() -> bool:
            assert self.process.poll() is None, f"caddy exited:\n{self.log_text()}"
            return self.root_certificate.is_file()

        wait_for(made, 30, "Caddy's internal CA")
        return ssl.create_default_context(cafile=str(self.root_certificate))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def caddy_binary() -> str:
    binary = shutil.which("caddy")
    if binary is None:
        reason = "caddy is not installed here (.ci/run installs it: apt-get install caddy)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture
def chamber_behind_caddy(tmp_path: Path, caddy_binary: str) -> Iterator[tuple[NodeProcess, Caddy]]:
    """A chamber at ``https://127.0.0.1:PORT`` (Caddy's port), started like the unit."""
    flags, unit_env = unit_serve_options()
    node = NodeProcess(
        name="lille",
        root=tmp_path,
        port=free_port(),
        inner_port=free_port(),
        scheme="https",
        serve_args=(*flags, "--log-level", "info"),  # the access log is at info
    )
    node.env.update({**unit_env, "ARCHIPEL_LOG_FORMAT": "json"})
    node.init()
    caddy = Caddy(
        caddy_binary,
        tmp_path / "caddy",
        caddyfile(node.port, free_port(), node.inner_port, tmp_path / "caddy" / "storage"),
    )
    try:
        node.start()
        yield node, caddy
    finally:
        caddy.stop()
        node.close()


def access_entries(node: NodeProcess, path: str) -> list[dict[str, object]]:
    entries = []
    for line in node.log_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "node.access" and entry.get("path") == path:
                entries.append(entry)
    return entries


def test_the_node_sees_each_client_and_https_through_caddy(
    chamber_behind_caddy: tuple[NodeProcess, Caddy],
) -> None:
    node, caddy = chamber_behind_caddy
    tls = caddy.tls()

    def through_caddy(local_address: str, path: str) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=local_address, verify=tls)
        with httpx.Client(transport=transport, trust_env=False, timeout=10) as client:
            return client.get(node.url + path)

    def answers() -> bool:
        assert caddy.process.poll() is None, f"caddy exited:\n{caddy.log_text()}"
        try:
            return through_caddy(CLIENTS[0], "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, 30, "the chamber through Caddy over HTTPS")
    for address in CLIENTS:
        path = f"/healthz/from-{address}"  # a path per client: its access line says who came
        response = through_caddy(address, path)
        assert response.status_code == 404, response.text  # the node answered, not Caddy
        assert response.url.scheme == "https"
    seen = {}
    for address in CLIENTS:
        path = f"/healthz/from-{address}"
        (entry,) = wait_for(lambda p=path: access_entries(node, p), 10, f"access line for {path}")
        seen[address] = (entry["client"], entry["scheme"])
    assert seen == {address: (address, "https") for address in CLIENTS}, (
        f"the node saw {seen}: is serve started with --proxy-headers, Caddy's address in"
        " trusted_proxies?"
    )
