"""Migration 0013 on a database that already holds several ratings by one author."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.migrate import upgrade


def _brick(db: sqlite3.Connection, key: str, *, local: bool) -> int:
    cursor = db.execute(
        "INSERT INTO bricks (key, uri, url, local, host, title, category, summary,"
        " body_markdown, body_html, body_text, tags_text, links, files, licence, version,"
        " rating_sum, rating_count, like_count, published_at, updated_at) VALUES"
        " (?, ?, ?, ?, 'lille.example', 'T', 'concept', 'S', '', '', '', '', '[]', '[]',"
        " 'CC', 1, 12, 4, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        (key, f"https://lille.example/bricks/{key}", f"https://lille.example/bricks/{key}", local),
    )
    return int(cursor.lastrowid or 0)


def _review(db: sqlite3.Connection, brick: int, author: str, rating: int | None, at: str) -> None:
    db.execute(
        "INSERT INTO brick_reviews (uri, brick_id, author_uri, author_name, author_url, local,"
        " rating, used, comment_html, created_at) VALUES (?, ?, ?, 'A', 'u', 1, ?, 1, '', ?)",
        (f"https://x.example/r/{brick}/{author}/{at}", brick, author, rating, at),
    )


def test_duplicates_keep_the_latest_rating_and_counts_follow(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url, "0012")
    with sqlite3.connect(path) as db:
        brick = _brick(db, "b1", local=True)
        _review(db, brick, "paul", 1, "2026-01-01 10:00:00")
        _review(db, brick, "paul", 5, "2026-01-02 10:00:00")
        _review(db, brick, "paul", None, "2026-01-03 10:00:00")  # a comment, no rating
        _review(db, brick, "jeanne", 2, "2026-01-01 10:00:00")
    upgrade(url)
    with sqlite3.connect(path) as db:
        reviews = db.execute(
            "SELECT author_uri, rating, created_at FROM brick_reviews ORDER BY author_uri"
        ).fetchall()
        figures = db.execute("SELECT rating_sum, rating_count FROM bricks").fetchone()
    assert reviews == [("jeanne", 2, "2026-01-01 10:00:00"), ("paul", 5, "2026-01-03 10:00:00")]
    assert figures == (7, 2)
