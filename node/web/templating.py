"""Jinja2 pages, rendered in the request's language."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from node import i18n
from node.clearing.units import format_minutes
from node.web import labels
from node.web.flash import pop_flashes
from node.web.people import person_html
from node.web.sessions import csrf_token

__all__ = ["make_templates", "render"]


@functools.cache
def make_templates() -> Environment:
    """The pages' environment, one per process: it holds nothing of a chamber (the settings
    come with each render), and its compiled templates are kept across apps."""
    env = Environment(
        loader=PackageLoader("node.web", "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        enable_async=False,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["duration"] = _duration
    env.filters["day"] = i18n.format_day
    env.filters["moment"] = i18n.format_moment
    label_functions = {name: getattr(labels, name) for name in labels.__all__ if name != "LABELS"}
    env.globals.update(label_functions)
    env.filters.update(label_functions)
    env.globals["format_day"] = i18n.format_day
    env.globals["format_moment"] = i18n.format_moment
    env.globals["language_names"] = i18n.LANGUAGE_NAMES
    env.globals["language_url"] = _language_url
    env.globals["person"] = person_html
    env.filters["person"] = person_html
    return env


def _language_url(request: Request, language: str) -> str:
    """This page in ``language``: its path and query, with ``lang`` set."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return f"{request.url.path}?{urlencode([*query, ('lang', language)])}"


def _duration(value: int | Decimal | None, unit: str = "minutes") -> str:
    """``90|duration`` or ``Decimal("1.50")|duration("hours")`` -> ``1 h 30``: every page
    shows hours through ``node.clearing.units.format_minutes``."""
    if value is None:
        return ""
    minutes = value * 60 if unit == "hours" else value
    return format_minutes(int(Decimal(minutes).to_integral_value()))


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    node = request.app.state.node
    page = node.templates.get_template(template).render(
        request=request,
        csrf_token=lambda: csrf_token(request),
        chamber=node.settings,
        language=i18n.current_language(),
        flashes=pop_flashes(request),
        **values,
    )
    return HTMLResponse(
        page, status_code=status_code, headers={"Vary": "Accept, Accept-Language, Cookie"}
    )
