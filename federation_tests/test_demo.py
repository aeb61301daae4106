"""``make demo``: the three-chamber archipelago builds, answers on its three URLs and checks
itself (bricks federated, cross-chamber exchanges posted in both ledgers, mirror accounts
opposite, ledgers summing to zero), then stops its processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.federation
REPO = Path(__file__).resolve().parent.parent


def test_the_demo_builds_and_checks_its_archipelago(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    result = subprocess.run(
        [sys.executable, "-m", "demo.archipelago", "--check", "--data", str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked: pages answer, bricks federated" in result.stdout
    assert result.stdout.rstrip().endswith("Stopped.")
    # each chamber had its data directory, its log and its port; none is left listening
    for name in ("lille", "gand", "roubaix"):
        assert (data / name / "archipel.toml").exists()
        assert (data / f"{name}.log").exists()
    ports = json.loads((data / "archipelago.json").read_text())["ports"]
    assert len(set(ports)) == 3
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_make_demo_runs_the_archipelago_on_fixed_ports() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "demo", "DEMO_PORT=8201"], cwd=REPO, capture_output=True, text=True
    )
    assert dry_run.returncode == 0, dry_run.stderr
    assert re.search(r"python -m demo\.archipelago --base-port 8201\b", dry_run.stdout)
