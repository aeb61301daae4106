"""Crash points: named in the environment, or armed in a file that a running process reads,
where a point fires once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from node.faults import CRASH_ENV, CRASH_FILE_ENV

_RUN = "from node.faults import crash_point; crash_point('a.step'); print('ran on')"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, CRASH_FILE_ENV)}
    return subprocess.run(
        [sys.executable, "-c", _RUN], env={**clean, **env}, capture_output=True, text=True
    )


def test_a_point_named_in_the_environment_kills_the_process() -> None:
    assert _run(**{CRASH_ENV: "other, a.step"}).returncode == -9
    assert _run(**{CRASH_ENV: "other"}).stdout == "ran on\n"


def test_a_point_armed_in_the_file_fires_once(tmp_path: Path) -> None:
    armed = tmp_path / "crash-at"
    assert _run(**{CRASH_FILE_ENV: str(armed)}).stdout == "ran on\n"  # no file: nothing armed
    armed.write_text("other")
    assert _run(**{CRASH_FILE_ENV: str(armed)}).stdout == "ran on\n"
    assert armed.exists()  # another point stays armed
    armed.write_text("a.step\n")
    assert _run(**{CRASH_FILE_ENV: str(armed)}).returncode == -9
    assert not armed.exists()
    assert _run(**{CRASH_FILE_ENV: str(armed)}).stdout == "ran on\n"  # the restart runs on
