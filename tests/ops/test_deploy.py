"""The deploy files: the entry point's shell, what it runs, and the compose file."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.config import ConfigError, Settings, load_settings, new_settings, write_settings

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
        "--admin-password-file": f"{data}/admin-password.txt",
    }
    assert serve == ["serve", "--data-dir", data, "--host", "0.0.0.0", "--port", "8080"]
    assert flags_after(init, "--admin-password-file") == [f"{data}/admin-password.txt"]


def flags_after(call: list[str], flag: str) -> list[str]:
    return [call[i + 1] for i, word in enumerate(call[:-1]) if word == flag]


def test_a_given_admin_password_is_passed_and_no_file_is_asked(
    tmp_path: Path, fake_path: Path
) -> None:
    result, calls = run_entrypoint(
        tmp_path, fake_path, "migrate", **FIRST_START, ARCHIPEL_ADMIN_PASSWORD="s3cret pass"
    )
    assert result.returncode == 0, result.stderr
    init = calls[0]
    assert flags_after(init, "--admin-password") == ["s3cret pass"]
    assert "--admin-password-file" not in init


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
    assert services["node"]["command"] == ["serve", "--proxy-headers"]
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


# -- behind the proxy: each visitor keeps their address (issue 12, finding 8) ---------------


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def _default(value: str) -> str:
    """``${NAME:-default}`` as compose reads it without .env: the default."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match[1] if match else value


def _unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's ``Key=value`` lines (every value of a repeated key)."""
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_compose_serves_with_proxy_headers_trusting_only_its_network(tmp_path: Path) -> None:
    compose = _compose()
    node = compose["services"]["node"]
    assert "--proxy-headers" in node["command"]
    assert "ports" not in node  # only the compose network (Caddy) reaches the node
    trusted = _default(node["environment"]["ARCHIPEL_TRUSTED_PROXIES"])
    (network,) = compose["networks"]["default"]["ipam"]["config"]
    assert trusted == _default(network["subnet"])  # the network Caddy is on, nothing wider
    assert ipaddress.ip_network(trusted).is_private
    assert "ARCHIPEL_TRUSTED_PROXIES" not in compose["services"]["worker"].get("environment", {})
    # the setting is one `serve` accepts
    settings = new_settings(tmp_path / "d", url="https://lille.example", name="Lille")
    write_settings(settings)
    loaded = load_settings(settings.data_dir, {"ARCHIPEL_TRUSTED_PROXIES": trusted})
    assert loaded.trusted_proxies == trusted


def test_the_entrypoint_passes_serve_flags_through(tmp_path: Path, fake_path: Path) -> None:
    run_entrypoint(tmp_path, fake_path, "migrate", **FIRST_START)
    _, calls = run_entrypoint(tmp_path, fake_path, "serve", "--proxy-headers")
    assert calls == [
        ["serve", "--data-dir", str(tmp_path / "data"), "--host", "0.0.0.0", "--port", "8000",
         "--proxy-headers"]
    ]  # fmt: skip


def test_the_systemd_unit_serves_with_proxy_headers_from_localhost() -> None:
    unit = _unit("archipel-web.service")
    (exec_start,) = unit["ExecStart"]
    words = shlex.split(exec_start)
    assert words[1] == "serve" and "--proxy-headers" in words
    assert words[words.index("--host") + 1] == "127.0.0.1"  # only local processes connect
    environment = " ".join(unit.get("Environment", []))
    assert "TRUSTED_PROXIES" not in environment  # the default, 127.0.0.1, is Caddy's address
    assert Settings.trusted_proxies == "127.0.0.1"


@pytest.mark.parametrize("value", ["*", "127.0.0.1, *", "proxy.example"])
def test_trusting_anyone_or_a_name_is_refused(tmp_path: Path, value: str) -> None:
    settings = new_settings(tmp_path / "d", url="https://lille.example", name="Lille")
    write_settings(settings)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(settings.data_dir, {"ARCHIPEL_TRUSTED_PROXIES": value})
    ok = load_settings(settings.data_dir, {"ARCHIPEL_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    assert ok.trusted_proxies == "127.0.0.1, 10.0.0.0/8"


# -- self-hosting by the guide (issue 12, finding 9) -----------------------------------------


def _guide_commands() -> list[str]:
    """Section B's shell block of deploy/README.md, one command per line."""
    readme = (DEPLOY / "README.md").read_text()
    section = readme[readme.index("## B. Without containers") :]
    start = section.index("```sh") + len("```sh")
    block = section[start : section.index("```", start)]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_guide_creates_the_data_directory_for_the_archipel_user() -> None:
    """``useradd --system --home DIR`` does not create DIR: init as that user failed."""
    commands = _guide_commands()
    init = next(i for i, c in enumerate(commands) if "sudo -u archipel" in c and " init " in c)
    data_dir = shlex.split(commands[init])[shlex.split(commands[init]).index("--data-dir") + 1]

    def creates_it(command: str) -> bool:
        words = shlex.split(command)
        if "install" in words and "-d" in words:
            owner = words[words.index("-o") + 1] if "-o" in words else "root"
            return owner == "archipel" and data_dir in words
        if "useradd" in words:
            home = words[words.index("--home-dir") + 1] if "--home-dir" in words else None
            return home == data_dir and ("--create-home" in words or "-m" in words)
        return False

    assert any(creates_it(c) for c in commands[:init]), commands[:init]
    assert any("archipel-backup.timer" in c and "enable" in c for c in commands[init:])


def test_init_explains_a_data_directory_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "srv").write_text("a file where a directory should be")
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "init", "--data-dir", str(tmp_path / "srv" / "a"),
         "--url", "https://lille.example", "--name", "Lille"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot create the data directory" in result.stderr
    assert "install -d -o archipel" in result.stderr and "Traceback" not in result.stderr


def test_a_timer_runs_the_backup_daily_with_retention_outside_the_data_dir() -> None:
    timer = _unit("archipel-backup.timer")
    assert timer["OnCalendar"] == ["daily"] and timer["Persistent"] == ["true"]
    service = _unit("archipel-backup.service")
    assert service["Type"] == ["oneshot"] and service["User"] == ["archipel"]
    (exec_start,) = service["ExecStart"]
    words = shlex.split(exec_start)
    assert words[1] == "backup" and int(words[words.index("--keep") + 1]) >= 1
    data_dir = words[words.index("--data-dir") + 1]
    out = next(w for w in words[2:] if w.startswith("/") and w != data_dir)
    assert not out.startswith(data_dir)
    assert out in service["ReadWritePaths"][0].split()
    web = shlex.split(_unit("archipel-web.service")["ExecStart"][0])
    assert web[web.index("--data-dir") + 1] == data_dir  # the chamber the web unit serves


def test_compose_backs_up_into_its_own_volume_with_retention() -> None:
    services = _compose()["services"]
    backup = services["backup"]
    assert backup["command"][0] == "backups"
    target = backup["command"][1]
    mounts = {m.split(":")[1]: m.split(":") for m in backup["volumes"]}
    assert mounts[target][0] != "data"  # not the data volume: it would die with it
    assert mounts["/data"][0] == "data" and mounts["/data"][2:] == ["ro"]
    assert mounts[target][0] in _compose()["volumes"]
    assert int(_default(backup["environment"]["ARCHIPEL_BACKUP_KEEP"])) >= 1
    assert "/backups" in (DEPLOY / "Dockerfile").read_text()  # owned by the archipel user


def test_the_backup_service_backs_up_then_sleeps_until_stopped(
    tmp_path: Path, fake_path: Path
) -> None:
    """The loop of ``entrypoint.sh backups``: a backup with ``--keep``, then a sleep of the
    interval; a TERM (``docker compose stop``) ends it cleanly."""
    sleeps = tmp_path / "sleeps.txt"
    stub = fake_path / "sleep"
    stub.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> {sleeps}\n'
        f'if [ "$(wc -l < {sleeps})" -ge 2 ]; then kill -TERM "$PPID"; fi\n'
    )
    stub.chmod(0o755)
    run_entrypoint(tmp_path, fake_path, "migrate", **FIRST_START)
    result, calls = run_entrypoint(
        tmp_path, fake_path, "backups", "/backups",
        ARCHIPEL_BACKUP_KEEP="7", ARCHIPEL_BACKUP_INTERVAL_SECONDS="3600",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = str(tmp_path / "data")
    assert calls == [["backup", "--data-dir", data, "/backups", "--keep", "7"]] * 2
    assert sleeps.read_text().split() == ["3600", "3600"]


def _archipel_wrapper(bin_dir: Path, *, serve: bool = True) -> None:
    """``archipel`` in ``bin_dir``: this checkout's CLI (``serve`` returns at once if not)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    skip_serve = "" if serve else 'if [ "$1" = serve ]; then exit 0; fi\n'
    (bin_dir / "archipel").write_text(
        f'#!/bin/sh\n{skip_serve}PYTHONPATH="{ROOT}" exec "{sys.executable}" -m node.cli "$@"\n'
    )
    (bin_dir / "archipel").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_keeps_the_password_out_of_the_logs(tmp_path: Path) -> None:
    """The real entry point and ``archipel init``: what the container logs (stdout and
    stderr) never holds the generated password, which is in a 0600 file instead."""
    bin_dir = tmp_path / "bin"
    _archipel_wrapper(bin_dir)
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ARCHIPEL_DATA_DIR": str(data),
        "ARCHIPEL_URL": "https://lille.example",
        "ARCHIPEL_NAME": "Chambre de Lille",
        "ARCHIPEL_ADMIN": "marie",
    }
    env.pop("ARCHIPEL_DATABASE_URL", None)
    result = subprocess.run(
        ["sh", "-c", f"umask 022 && exec sh {ENTRYPOINT} migrate"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    login = (data / "admin-password.txt").read_text()
    password = login.split("password: ")[1].strip()
    assert login.startswith("login: marie\n") and len(password) >= 12
    assert password not in result.stdout + result.stderr
    assert "admin-password.txt" in result.stdout  # says where it is
    assert _mode(data / "admin-password.txt") == 0o600


def test_files_holding_secrets_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Configuration (node secret), database (password hashes, sealed keys), the first
    password, backups: mode 0600, in a 0700 data directory, under ``umask 022``."""
    bin_dir = tmp_path / "bin"
    _archipel_wrapper(bin_dir)
    data, backups = tmp_path / "data", tmp_path / "backups"
    backups.mkdir()
    script = (
        f"umask 022 && archipel init --data-dir {data} --url https://lille.example --name L"
        f" --admin marie --admin-password-file {data}/admin-password.txt"
        f" && archipel backup --data-dir {data} {backups} --keep 3"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("ARCHIPEL_DATABASE_URL", None)
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr
    (archive,) = backups.iterdir()
    assert _mode(data) == 0o700
    for secret in (data / "archipel.toml", data / "archipel.db", data / "admin-password.txt"):
        assert _mode(secret) == 0o600, secret
    assert _mode(archive) == 0o600


def test_make_run_writes_the_admin_login_for_its_owner_only(tmp_path: Path) -> None:
    """``make run`` (with this checkout's CLI as the venv's, ``serve`` stubbed out)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    _archipel_wrapper(venv / "bin", serve=False)
    (venv / ".installed").touch()  # newer than pyproject.toml: no pip install
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "ARCHIPEL_"))}
    result = subprocess.run(
        ["sh", "-c", f"umask 022 && exec {make} -s run VENV={venv} DATA={data} PORT=8765"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    login = data / "admin-login.txt"
    assert login.read_text().startswith("login: marie\npassword: ")
    assert _mode(login) == 0o600
    assert _mode(data / "archipel.toml") == 0o600
