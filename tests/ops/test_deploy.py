"""The deploy files: the entry point's shell, what it runs, and the compose file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"

#: Records each call (one line of arguments, tab-separated); ``init`` writes the config
#: like the real one, so that the next start sees an initialised chamber.
FAKE_ARCHIPEL = """#!/bin/sh
printf '%s\\t' "$@" >> "$ARCHIPEL_CALLS"
printf '\\n' >> "$ARCHIPEL_CALLS"
if [ "$1" = init ]; then
    while [ $# -gt 0 ]; do
        if [ "$1" = --data-dir ]; then mkdir -p "$2" && touch "$2/archipel.toml"; fi
        shift
    done
fi
"""


@pytest.fixture
def fake_path(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "archipel"
    stub.write_text(FAKE_ARCHIPEL)
    stub.chmod(0o755)
    return bin_dir


def run_entrypoint(
    tmp_path: Path, fake_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    calls = tmp_path / "calls.txt"
    calls.unlink(missing_ok=True)
    environ = {
        "PATH": f"{fake_path}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ARCHIPEL_CALLS": str(calls),
        "ARCHIPEL_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=environ, timeout=30
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, [line.rstrip("\t").split("\t") for line in lines]


FIRST_START = {
    "ARCHIPEL_URL": "https://lille.example",
    "ARCHIPEL_NAME": "Chambre de Lille",
    "ARCHIPEL_CHAMBER_USERNAME": "lille",
    "ARCHIPEL_DATABASE_URL": "postgresql://archipel:pw@db:5432/archipel",
    "ARCHIPEL_ADMIN": "marie",
}


def test_the_entrypoint_is_valid_shell() -> None:
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_first_start_initialises_then_serves(tmp_path: Path, fake_path: Path) -> None:
    data = str(tmp_path / "data")
    result, calls = run_entrypoint(tmp_path, fake_path, "serve", **FIRST_START, PORT="8080")
    assert result.returncode == 0, result.stderr
    init, serve = calls
    assert init[:3] == ["init", "--data-dir", data]
    flags = dict(zip(init[3::2], init[4::2], strict=False))
    assert flags == {
        "--url": "https://lille.example",
        "--name": "Chambre de Lille",
        "--chamber-username": "lille",
        "--database-url": "postgresql://archipel:pw@db:5432/archipel",
        "--admin": "marie",
    }
    assert serve == ["serve", "--data-dir", data, "--host", "0.0.0.0", "--port", "8080"]


def test_later_starts_do_not_initialise_again(tmp_path: Path, fake_path: Path) -> None:
    run_entrypoint(tmp_path, fake_path, **FIRST_START)
    result, calls = run_entrypoint(tmp_path, fake_path, **FIRST_START)
    assert result.returncode == 0
    assert [call[0] for call in calls] == ["serve"]  # no argument: serve by default
    assert calls[0][-2:] == ["--port", "8000"]


def test_worker_and_other_commands_get_the_data_dir(tmp_path: Path, fake_path: Path) -> None:
    data = str(tmp_path / "data")
    run_entrypoint(tmp_path, fake_path, "migrate", **FIRST_START)
    _, calls = run_entrypoint(tmp_path, fake_path, "worker", "--until-idle")
    assert calls == [["worker", "--data-dir", data, "--until-idle"]]
    _, calls = run_entrypoint(tmp_path, fake_path, "backup", "/backups/today.tar.gz")
    assert calls == [["backup", "--data-dir", data, "/backups/today.tar.gz"]]
    _, calls = run_entrypoint(tmp_path, fake_path, "doctor")
    assert calls == [["doctor", "--data-dir", data]]


def test_the_first_start_needs_url_and_name(tmp_path: Path, fake_path: Path) -> None:
    result, calls = run_entrypoint(tmp_path, fake_path, "serve", ARCHIPEL_NAME="Lille")
    assert result.returncode != 0
    assert "ARCHIPEL_URL" in result.stderr
    assert calls == []


def test_the_compose_file_parses_and_builds_the_dockerfile() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "node", "worker", "caddy"} <= set(services)
    build = services["node"]["build"]
    dockerfile = (DEPLOY / "compose.yaml").parent / build["context"] / build["dockerfile"]
    assert dockerfile.resolve().is_file()
    assert services["node"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert "ENTRYPOINT" in dockerfile.read_text()
    assert (DEPLOY / "Caddyfile").is_file()


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        pytest.skip(f"docker compose is not available: {reason[0] if reason else probe.returncode}")
    env_file = DEPLOY / ".env"
    created = not env_file.exists()
    if created:
        env_file.write_text((DEPLOY / "example.env").read_text())
    try:
        result = subprocess.run(
            [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if created:
            env_file.unlink()
    if result.returncode != 0 and "daemon" in result.stderr.lower():
        pytest.skip(f"docker compose needs an engine here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
