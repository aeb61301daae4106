"""The README's first screen and the Makefile a newcomer starts from."""

from __future__ import annotations

import re
from pathlib import Path

from node.members.service import RESERVED_USERNAMES

REPO = Path(__file__).resolve().parents[2]
FIRST_SCREEN = 24  # lines


def test_the_first_screen_holds_the_two_commands_and_links_to_deploy() -> None:
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:FIRST_SCREEN])
    assert "make run" in first_screen and "make test" in first_screen
    assert "](deploy/README.md)" in first_screen
    assert (REPO / "deploy" / "README.md").exists()
    assert "make demo" in first_screen
    # How a chamber chooses its language and sets up email (issue 14).
    assert "language" in first_screen and '"nl"' in first_screen
    assert "smtp_host" in first_screen and "reset-password" in first_screen


def test_the_readme_links_point_at_its_sections() -> None:
    readme = (REPO / "README.md").read_text()
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in readme.splitlines()
        if line.startswith("#")
    }
    for anchor in re.findall(r"\]\(#([^)]+)\)", readme):
        assert anchor in headings, anchor


def test_the_makefile_administrators_have_valid_usernames() -> None:
    """``make run`` once passed ``--admin admin``, a reserved name: ``init`` refused it."""
    makefile = (REPO / "Makefile").read_text()
    admins = re.findall(r"--admin (\w+)", makefile)
    assert admins
    assert not set(admins) & RESERVED_USERNAMES
