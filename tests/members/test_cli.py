"""The operator's commands for the same actions, all written to the audit log."""

from pathlib import Path

import pytest

from node.cli import main


def run(*args: str) -> int:
    return main(list(args))


def test_member_admin_and_clearing_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    common = ["--url", "https://lille.example", "--name", "Lille", "--chamber-username", "lille"]
    assert (
        run("init", "--data-dir", data, *common, "--admin", "ada", "--admin-password", "x" * 12)
        == 0
    )
    assert run("member", "add", "--data-dir", data, "bob", "--password", "y" * 12) == 0
    capsys.readouterr()
    assert run("admin", "demote", "--data-dir", data, "ada") == 1
    assert "no administrator left" in capsys.readouterr().err
    assert run("admin", "promote", "--data-dir", data, "bob", "--reason", "help") == 0
    assert run("admin", "demote", "--data-dir", data, "ada") == 0
    assert run("clearing", "grant", "--data-dir", data, "bob", "--reason", "founder") == 0
    assert "clearing access granted" in capsys.readouterr().out
    assert run("clearing", "revoke", "--data-dir", data, "bob", "--reason", "dispute") == 0
    assert run("member", "suspend", "--data-dir", data, "ada", "--reason", "left") == 0
    assert run("member", "approve", "--data-dir", data, "ada") == 1  # suspended: reinstate
    assert run("member", "reinstate", "--data-dir", data, "ada") == 0
    assert run("block", "add", "--data-dir", data, "spam.example", "--reason", "spam") == 0
    capsys.readouterr()
    assert run("admin", "audit", "--data-dir", data) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in reversed(lines)] == [
        "admin.promote",
        "admin.demote",
        "clearing.grant",
        "clearing.revoke",
        "member.suspend",
        "member.reinstate",
        "domain.block",
    ]
    assert all(line.split("\t")[1] == "operator" for line in lines)
    assert run("member", "list", "--data-dir", data, "--status", "approved") == 0
    assert "bob\tapproved\tadmin" in capsys.readouterr().out
