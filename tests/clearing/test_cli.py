from pathlib import Path

import pytest

from node.cli import main


def test_operator_sets_and_resets_a_members_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    assert main(["init", "--data-dir", data, "--url", "https://lille.test", "--name", "L"]) == 0
    assert main(["member", "add", "--data-dir", data, "marie"]) == 0
    capsys.readouterr()
    args = ["clearing", "limits", "--data-dir", data, "marie"]
    assert main([*args, "--floor", "-10 h", "--ceiling", "40h", "--reason", "trusted"]) == 0
    assert capsys.readouterr().out.strip() == "marie: floor -10 h 00, ceiling 40 h 00"
    assert main([*args, "--floor", "default", "--reason", "back to normal"]) == 0
    assert capsys.readouterr().out.strip() == "marie: floor -20 h 00, ceiling 40 h 00"
    assert main([*args, "--floor", "lots", "--reason", "x"]) == 1
    assert "is not a duration" in capsys.readouterr().err
    assert main([*args, "--floor", "5 h", "--reason", "x"]) == 1
    assert "zero or below" in capsys.readouterr().err
    assert main(["admin", "audit", "--data-dir", data]) == 0
    log = capsys.readouterr().out
    assert "clearing.limit\tmarie\ttrusted" in log and "back to normal" in log
