"""Named crash points, for the fault tests of protocols between nodes.

``crash_point("settlement.prepared")`` does nothing unless the environment variable
``ARCHIPEL_CRASH_AT`` names that point (a comma-separated list): then the process kills itself
with SIGKILL on the spot, as a power cut would, so a test can show that a restart recovers
from exactly that step. Production never sets the variable.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_ENV", "crash_point"]

CRASH_ENV = "ARCHIPEL_CRASH_AT"


def crash_point(name: str) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if wanted and name in {part.strip() for part in wanted.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
