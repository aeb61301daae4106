"""Named crash points, for the fault tests of protocols between nodes.

``crash_point("settlement.prepared")`` does nothing unless the environment variable
``ARCHIPEL_CRASH_AT`` names that point (a comma-separated list): then the process kills itself
with SIGKILL on the spot, as a power cut would, so a test can show that a restart recovers
from exactly that step. ``ARCHIPEL_CRASH_AT_FILE`` names a file that may list points the same
way: a test arms a running node by writing it, and the point fires once (the file is removed
before the kill, so the restarted node runs on). Production sets neither variable.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_ENV", "CRASH_FILE_ENV", "crash_point"]

CRASH_ENV = "ARCHIPEL_CRASH_AT"
CRASH_FILE_ENV = "ARCHIPEL_CRASH_AT_FILE"


def _names(points: str) -> set[str]:
    return {part.strip() for part in points.split(",")}


def crash_point(name: str) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if wanted and name in _names(wanted):
        os.kill(os.getpid(), signal.SIGKILL)
    armed = os.environ.get(CRASH_FILE_ENV)
    if not armed:
        return
    try:
        with open(armed) as points:
            if name not in _names(points.read()):
                return
        os.unlink(armed)
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
