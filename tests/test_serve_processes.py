"""``archipel serve --workers N [--no-worker]``: the checks before uvicorn starts, and the app
each server process builds from what the parent leaves in the environment (the processes
themselves run in federation_tests/test_scale_out.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.cli import main
from node.cli.setup import SERVE_DATA_DIR_ENV, SERVE_WORKER_ENV, server_process_app


def test_serve_needs_at_least_one_server_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--workers", "0"]) == 1
    assert "--workers: at least 1" in capsys.readouterr().err


def _wake_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "archipel-wake"]


def _worker_tasks() -> list[asyncio.Task[object]]:
    """The job worker's task (``Runtime.run_worker``, which starts the listener)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "Runtime.run_worker"
    ]


@pytest.mark.parametrize("worker", ["1", "0"])
def test_each_server_process_builds_the_app_of_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str
) -> None:
    data_dir = tmp_path / "lille"
    assert main(["init", "--data-dir", str(data_dir), "--url", "https://lille.example",
                 "--name", "Lille"]) == 0  # fmt: skip
    monkeypatch.setenv(SERVE_DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv(SERVE_WORKER_ENV, worker)

    async def listeners_while_serving() -> int:
        app = server_process_app()
        async with app.router.lifespan_context(app):
            assert app.state.node.settings.data_dir == data_dir.resolve()
            # the worker (and its listener) start once the loop turns; with no worker task
            # there is nothing to wait for
            for _ in range(200):
                if _wake_tasks() or not _worker_tasks():
                    break
                await asyncio.sleep(0.01)
            return len(_wake_tasks())

    assert asyncio.run(listeners_while_serving()) == (1 if worker == "1" else 0)
