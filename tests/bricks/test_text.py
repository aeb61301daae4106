"""Markdown in, sanitized HTML out: scripts, event handlers and javascript: URLs go."""

from __future__ import annotations

from node.bricks.text import html_to_text, render_markdown, sanitize_html


def test_markdown_renders() -> None:
    html = render_markdown(
        "# Titre\n\n*a* **b** [lien](https://example.org)\n\n| a |\n|---|\n| 1 |"
    )
    assert "<h1>Titre</h1>" in html and "<em>a</em>" in html and "<strong>b</strong>" in html
    assert '<a href="https://example.org" rel="nofollow noopener ugc">lien</a>' in html
    assert "<table>" in html


def test_raw_html_in_markdown_is_shown_not_run() -> None:
    html = render_markdown('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">')
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def test_javascript_links_are_dropped() -> None:
    html = render_markdown("[clic](javascript:alert(1)) [data](data:text/html,x)")
    assert "<a" not in html  # left as text, never a link
    assert 'href="javascript' not in sanitize_html('<a href="javascript:alert(1)">x</a>')
    assert "href" not in sanitize_html('<a href="JaVaScRiPt:alert(1)">x</a>')


def test_remote_html_is_sanitized() -> None:
    dirty = (
        '<p onclick="steal()">Bonjour <script>alert(1)</script>'
        '<a href="javascript:alert(1)">x</a><a href="https://ok.example/">ok</a>'
        '<img src="https://t.example/p.gif" onerror="x()"><iframe src="https://e"></iframe>'
        '<span style="position:fixed">s</span></p>'
    )
    clean = sanitize_html(dirty)
    for forbidden in (
        "onclick",
        "<script",
        "alert(1)",
        "javascript:",
        "onerror",
        "<iframe",
        "style=",
    ):
        assert forbidden not in clean
    assert '<a href="https://ok.example/" rel="nofollow noopener ugc">ok</a>' in clean


def test_plain_text_of_html() -> None:
    assert html_to_text("<p>Un &amp; deux</p><p>trois<br>quatre</p>") == "Un & deux\ntrois\nquatre"
