"""Pages of the commons bank: catalogue, brick pages (AS2 on negotiation), the create and
edit forms, version history, tag pages, Atom feeds, attached files."""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.activitypub.featured import featured_ids
from node.activitypub.jsonld import default_context
from node.activitypub.outbox import tombstone_of
from node.bricks.as2 import format_time, review_note
from node.bricks.catalogue import CatalogueQuery, Scope, search_bricks
from node.bricks.files import file_path
from node.bricks.models import Brick, BrickReview, BrickVersion
from node.bricks.operations import brick_fields
from node.bricks.service import BrickForbidden, BrickNotFound, brick_article, is_author
from node.bricks.validation import (
    CATEGORIES,
    CATEGORY_LABELS,
    LICENCE_NAME,
    LICENCE_URL,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_SUMMARY_CHARS,
    BrickInvalid,
    normalize_tag,
    parse_category,
)
from node.db import read_only
from node.members.models import Member
from node.web.api import ID_MAX
from node.web.auth import current_member
from node.web.bricks_forms import BrickPayload, read_payload
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError
from node.web.flash import N_, flash
from node.web.negotiation import ActivityJSONResponse, wants_activity_json, wants_page
from node.web.people import brick_uris, load_people
from node.web.profiles import federate_profile
from node.web.responses import stored_file
from node.web.templating import render

__all__ = ["category_label", "catalogue_query", "pin_as", "routes"]


def category_label(category: str) -> str:
    labels = CATEGORY_LABELS.get(category, {})
    return labels.get(i18n.current_language(), labels.get("fr", category))


#: What a page says when someone else than its authors tries (a local brick; a remote
#: brick is edited and deleted in its own chamber).
_EDIT_FORBIDDEN = N_("Only the authors of a brick of this chamber can edit it.")
_DELETE_FORBIDDEN = N_("Only the authors of a brick can delete it.")


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def catalogue_query(node: NodeContext, params: Any, *, limit: int = 20) -> CatalogueQuery:
    """Catalogue filters from query parameters (the pages and the API share them)."""
    scope = params.get("scope") or "all"
    if scope not in ("local", "federated", "all"):
        raise ApiError(422, "scope: one of local, federated, all", errors={"scope": "invalid"})
    category = params.get("category") or None
    if category is not None:
        category = parse_category(category)
        if category is None:
            raise ApiError(
                422,
                "category: one of concept, analyse, methode",
                errors={"category": "one of concept, analyse, methode"},
            )
    author = (params.get("author") or "").strip().lstrip("@") or None
    if author and not author.startswith(("http://", "https://")):
        author = node.federation.urls(author.lower()).id
    cursor = params.get("after") or params.get("cursor")
    try:
        cursor_id = int(cursor) if cursor else None
        limit = int(params.get("limit") or limit)
    except ValueError:
        raise ApiError(422, "after and limit must be integers") from None
    if cursor_id is not None and not 1 <= cursor_id <= ID_MAX:
        raise ApiError(400, f"after: a whole number from 1 to {ID_MAX}", field="after")
    scope_value = cast(Scope, scope)
    return CatalogueQuery(
        q=(params.get("q") or "")[:200],
        category=category,
        tag=params.get("tag") or None,
        author=author,
        chamber=(params.get("chamber") or None),
        scope=scope_value,
        cursor=cursor_id,
        limit=limit,
    )


async def _page_context(request: Request) -> dict[str, Any]:
    return {
        "member": await current_member(request),
        "category_label": category_label,
        "categories": CATEGORIES,
        "licence_name": LICENCE_NAME,
        "licence_url": LICENCE_URL,
    }


async def catalogue(request: Request) -> Response:
    node = node_context(request)
    query = catalogue_query(node, request.query_params)
    async with read_only(node.sessionmaker) as session:
        page = await search_bricks(session, query)
        hosts = list((await session.execute(select(Brick.host).distinct())).scalars())
        chambers = list((await session.execute(select(Brick.chamber_uri).distinct())).scalars())
        people = await load_people(
            session, node.federation, node.settings, [*brick_uris(page.items), *chambers]
        )
    params = {k: v for k, v in request.query_params.items() if k not in ("after", "cursor") and v}
    next_url = None
    if page.next_cursor is not None:
        next_url = "?" + urlencode({**params, "after": page.next_cursor})
    return render(
        request,
        "bricks/catalogue.html",
        page=page,
        query=query,
        params=params,
        hosts=sorted(hosts),
        chamber_names=people.chamber_names(),
        people=people,
        next_url=next_url,
        heading=None,
        **await _page_context(request),
    )


async def tag_page(request: Request) -> Response:
    node = node_context(request)
    tag = normalize_tag(request.path_params["tag"])
    params = dict(request.query_params)
    params["tag"] = tag
    query = catalogue_query(node, params)
    async with read_only(node.sessionmaker) as session:
        page = await search_bricks(session, query)
        people = await load_people(session, node.federation, node.settings, brick_uris(page.items))
    next_url = None
    if page.next_cursor is not None:
        next_url = "?" + urlencode({"after": page.next_cursor})
    return render(
        request,
        "bricks/catalogue.html",
        page=page,
        query=query,
        params={},
        hosts=[],
        chamber_names={},
        people=people,
        next_url=next_url,
        heading=tag,
        **await _page_context(request),
    )


async def brick_page(request: Request) -> Response:
    node = node_context(request)
    if wants_activity_json(request):
        uri = node.settings.absolute(f"/bricks/{request.path_params['key']}")
        async with read_only(node.sessionmaker) as session:
            tombstone = await tombstone_of(session, uri)
        if tombstone is not None:  # a deleted brick answers 410 Gone with its Tombstone
            return ActivityJSONResponse(tombstone, status_code=410)
    brick = await node.services.bricks.load(request.path_params["key"])
    if wants_activity_json(request):
        if not brick.local:
            return RedirectResponse(brick.uri, status_code=303, headers={"Vary": "Accept"})
        document = {"@context": default_context(), **brick_article(node.federation, brick)}
        return ActivityJSONResponse(document)
    return await _brick_page(request)


async def _brick_page(
    request: Request,
    *,
    review_errors: dict[str, str] | None = None,
    form: Any = None,
    status_code: int = 200,
) -> Response:
    """The brick's page; after a refused review, with its errors and what was typed."""
    node = node_context(request)
    brick = await node.services.bricks.load(request.path_params["key"])
    async with read_only(node.sessionmaker) as session:
        reviews = list(
            (
                await session.execute(
                    select(BrickReview)
                    .where(BrickReview.brick_id == brick.id)
                    .order_by(BrickReview.created_at, BrickReview.id)
                )
            ).scalars()
        )
        people = await load_people(
            session,
            node.federation,
            node.settings,
            [*brick_uris([brick]), *(r.author_uri for r in reviews)],
        )
    context = await _page_context(request)
    member: Member | None = context["member"]
    pins = await _pins(node, brick, member)
    mine = next((r for r in reviews if member is not None and r.member_id == member.id), None)
    review_values = {"rating": str(mine.rating or "") if mine else "", "comment": ""}
    if form is not None:
        review_values = {k: str(form.get(k) or "") for k in ("rating", "comment")}
    return render(
        request,
        "bricks/brick.html",
        status_code=status_code,
        brick=brick,
        reviews=reviews,
        people=people,
        can_edit=member is not None and brick.local and is_author(brick, member),
        can_review=member is not None and not is_author(brick, member),
        my_review=mine,
        review_values=review_values,
        review_errors=review_errors or {},
        pins=pins,
        **context,
    )


async def _pins(node: NodeContext, brick: Brick, member: Member | None) -> list[dict[str, Any]]:
    """The pin buttons the member may use: on their profile (authors), the chamber's
    (administrators), each with whether the brick is pinned there now."""
    if member is None or not brick.local:
        return []
    who = (["me"] if is_author(brick, member) else []) + (["chamber"] if member.is_admin else [])
    pins = []
    async with read_only(node.sessionmaker) as session:
        for name in who:
            username = node.federation.instance_username if name == "chamber" else member.username
            pinned = brick.uri in await featured_ids(session, node.federation.urls(username).id)
            pins.append({"who": name, "pinned": pinned})
    return pins


async def pin_as(
    node: NodeContext, member: Member, key: str, *, for_chamber: bool, pinned: bool
) -> None:
    """Pin or unpin (page and API); the actor whose pinned bricks changed sends its new
    document to its followers."""

    async def send_profile(session: AsyncSession, username: str) -> None:
        await federate_profile(
            node.federation, session, node.settings, username, node.contributions
        )

    await node.services.bricks.pin(
        member, key, for_chamber=for_chamber, pinned=pinned, on_changed=send_profile
    )


async def pin_form(request: Request) -> Response:
    """The brick page's pin and unpin buttons (``as``: me or chamber)."""
    member = await current_member(request)
    if member is None:
        return _login_redirect(request)
    form = await request.form()
    key = request.path_params["key"]
    try:
        await pin_as(
            node_context(request),
            member,
            key,
            for_chamber=form.get("as") == "chamber",
            pinned=form.get("action") != "unpin",
        )
    except BrickForbidden as exc:
        raise ApiError(403, str(exc)) from None
    pinned = form.get("action") != "unpin"
    flash(request, N_("The brick is pinned.") if pinned else N_("The brick is unpinned."))
    return RedirectResponse(f"/bricks/{key}", status_code=303)


def _form_values(data: dict[str, Any]) -> dict[str, str]:
    def joined(value: Any, separator: str) -> str:
        if isinstance(value, list):
            return separator.join(str(v) for v in value)
        return str(value or "")

    return {
        "title": str(data.get("title") or ""),
        "category": parse_category(data.get("category")) or str(data.get("category") or ""),
        "summary": str(data.get("summary") or ""),
        "body": str(data.get("body") or ""),
        "tags": joined(data.get("tags"), ", "),
        "links": joined(data.get("links"), "\n"),
        "authors": joined(data.get("authors"), ", "),
    }


async def _form(
    request: Request,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    brick: Brick | None = None,
    status_code: int = 200,
    reattach: list[str] | None = None,
    too_large: str = "",
) -> Response:
    """The form, refilled; ``reattach`` names the files a browser cannot send back by
    itself, ``too_large`` explains a body refused before it was read."""
    return render(
        request,
        "bricks/form.html",
        status_code=status_code,
        values=_form_values(values),
        errors=errors,
        brick=brick,
        max_summary=MAX_SUMMARY_CHARS,
        max_files=MAX_FILES,
        max_file_mb=MAX_FILE_BYTES // (1024 * 1024),
        reattach=reattach or [],
        too_large=too_large,
        **await _page_context(request),
    )


_FORM_PATHS = re.compile(r"^/bricks/(?:new|(?P<key>[^/]+)/edit)$")


async def too_large_form(request: Request, message: str) -> Response | None:
    """The brick form again, with ``message``, for a body refused before it was read (the
    CSRF check reads forms first); None when this is not a person posting that form."""
    found = _FORM_PATHS.match(request.url.path)
    if request.method != "POST" or found is None or not wants_page(request):
        return None
    member = await current_member(request)
    if member is None:
        return None
    brick = None
    if found["key"] is not None:
        try:
            brick = await node_context(request).services.bricks.load(found["key"])
        except BrickNotFound:
            return None
    values = brick_fields(brick) if brick is not None else {}
    return await _form(
        request, values=values, errors={}, brick=brick, status_code=413, too_large=message
    )


async def _read_form(request: Request) -> BrickPayload | str:
    """The submitted brick, or why it was too large to read (HTTP 413)."""
    try:
        return await read_payload(request)
    except ApiError as exc:
        if exc.status_code != 413:
            raise
        return str(exc.detail)


async def new_brick(request: Request) -> Response:
    member = await current_member(request)
    if member is None:
        return _login_redirect(request)
    if request.method == "GET":
        return await _form(request, values={}, errors={})
    node = node_context(request)
    payload = await _read_form(request)
    if isinstance(payload, str):
        return await _form(request, values={}, errors={}, status_code=413, too_large=payload)
    try:
        brick = await node.services.bricks.create(
            member, payload.data, payload.uploads, published=node.contributions.bricks_published
        )
    except BrickInvalid as exc:
        return await _form(
            request,
            values=payload.data,
            errors=exc.errors,
            status_code=422,
            reattach=[name for name, _content in payload.uploads],
        )
    flash(request, N_("Your brick is published."))
    return RedirectResponse(f"/bricks/{brick.key}", status_code=303)


async def edit_brick(request: Request) -> Response:
    member = await current_member(request)
    if member is None:
        return _login_redirect(request)
    node = node_context(request)
    key = request.path_params["key"]
    brick = await node.services.bricks.load(key)
    if not brick.local or not is_author(brick, member):
        raise ApiError(403, i18n.gettext(_EDIT_FORBIDDEN))
    if request.method == "GET":
        return await _form(request, values=brick_fields(brick), errors={}, brick=brick)
    payload = await _read_form(request)
    if isinstance(payload, str):
        return await _form(
            request,
            values=brick_fields(brick),
            errors={},
            brick=brick,
            status_code=413,
            too_large=payload,
        )
    try:
        await node.services.bricks.update(
            member,
            key,
            payload.data,
            payload.uploads,
            payload.remove_files,
            published=node.contributions.bricks_published,
        )
    except BrickInvalid as exc:
        values = {**brick_fields(brick), **payload.data}
        return await _form(
            request,
            values=values,
            errors=exc.errors,
            brick=brick,
            status_code=422,
            reattach=[name for name, _content in payload.uploads],
        )
    except BrickForbidden:
        raise ApiError(403, i18n.gettext(_EDIT_FORBIDDEN)) from None
    flash(request, N_("Your changes are saved."))
    return RedirectResponse(f"/bricks/{key}", status_code=303)


async def remove_brick(request: Request) -> Response:
    """GET (or a POST without ``confirm``) asks first; a POST with ``confirm=yes`` deletes."""
    member = await current_member(request)
    if member is None:
        return _login_redirect(request)
    node = node_context(request)
    key = request.path_params["key"]
    if request.method == "POST":
        form = await request.form()
        if form.get("confirm") == "yes":
            try:
                await node.services.bricks.delete(member, key)
            except BrickForbidden:
                raise ApiError(403, i18n.gettext(_DELETE_FORBIDDEN)) from None
            flash(request, N_("The brick is deleted."))
            return RedirectResponse("/bricks", status_code=303)
    brick = await node.services.bricks.load(key)
    if not brick.local or not is_author(brick, member):
        raise ApiError(403, i18n.gettext(_DELETE_FORBIDDEN))
    return render(request, "bricks/delete.html", brick=brick, **await _page_context(request))


async def review_brick(request: Request) -> Response:
    member = await current_member(request)
    if member is None:
        return _login_redirect(request)
    form = await request.form()
    key = request.path_params["key"]
    try:
        await node_context(request).services.bricks.review(
            member, key, form.get("rating"), form.get("comment")
        )
    except BrickInvalid as exc:
        return await _brick_page(request, review_errors=exc.errors, form=form, status_code=422)
    except BrickForbidden:
        raise ApiError(403, i18n.gettext(N_("Authors do not rate their own brick."))) from None
    flash(request, N_("Thank you: your review is saved."))
    return RedirectResponse(f"/bricks/{key}#reviews", status_code=303)


async def history(request: Request) -> Response:
    node = node_context(request)
    brick = await node.services.bricks.load(request.path_params["key"])
    async with read_only(node.sessionmaker) as session:
        versions = list(
            (
                await session.execute(
                    select(BrickVersion)
                    .where(BrickVersion.brick_id == brick.id)
                    .order_by(BrickVersion.version.desc())
                )
            ).scalars()
        )
    return render(
        request,
        "bricks/history.html",
        brick=brick,
        versions=versions,
        **await _page_context(request),
    )


async def _feed(request: Request, tag: str | None) -> Response:
    node = node_context(request)
    query = CatalogueQuery(tag=tag, scope="local", limit=50)
    async with read_only(node.sessionmaker) as session:
        page = await search_bricks(session, query)
    settings = node.settings
    self_url = settings.absolute(f"/tags/{quote(tag)}/feed.atom" if tag else "/bricks/feed.atom")
    updated = max((b.updated_at for b in page.items), default=None)
    body = node.templates.get_template("bricks/feed.xml").render(
        chamber=settings,
        tag=tag,
        bricks=page.items,
        self_url=self_url,
        updated=format_time(updated) if updated else "1970-01-01T00:00:00Z",
        format_time=format_time,
        category_label=category_label,
        licence_url=LICENCE_URL,
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")


async def chamber_feed(request: Request) -> Response:
    return await _feed(request, None)


async def tag_feed(request: Request) -> Response:
    return await _feed(request, normalize_tag(request.path_params["tag"]))


async def attached_file(request: Request) -> Response:
    node = node_context(request)
    found = file_path(node.settings.files_dir, request.path_params["name"])
    if found is None:
        raise ApiError(404, "no such file")
    path, media_type = found
    return stored_file(path, media_type)


async def review_object(request: Request) -> Response:
    """Our reviews dereference as the ``Note`` we sent (or a page link for browsers)."""
    node = node_context(request)
    uri = node.settings.absolute(f"/reviews/{request.path_params['key']}")
    async with read_only(node.sessionmaker) as session:
        row = (
            await session.execute(
                select(BrickReview, Brick)
                .join(Brick, Brick.id == BrickReview.brick_id)
                .where(BrickReview.uri == uri)
            )
        ).first()
    if row is None:
        raise ApiError(404, "no such review")
    review, brick = row
    if not wants_activity_json(request):
        return RedirectResponse(f"/bricks/{brick.key}#reviews", status_code=303)
    note = review_note(
        uri=review.uri,
        author=review.author_uri,
        brick_uri=brick.uri,
        brick_title=brick.title,
        comment_html=review.comment_html,
        rating=review.rating,
        published=review.created_at,
        to=["https://www.w3.org/ns/activitystreams#Public"],
        cc=[a.actor_uri for a in brick.authors],
    )
    return ActivityJSONResponse({"@context": default_context(), **note})


routes = [
    Route("/bricks", catalogue, methods=["GET"]),
    Route("/bricks/new", new_brick, methods=["GET", "POST"]),
    Route("/bricks/feed.atom", chamber_feed, methods=["GET"]),
    Route("/bricks/{key}", brick_page, methods=["GET"]),
    Route("/bricks/{key}/edit", edit_brick, methods=["GET", "POST"]),
    Route("/bricks/{key}/delete", remove_brick, methods=["GET", "POST"]),
    Route("/bricks/{key}/reviews", review_brick, methods=["POST"]),
    Route("/bricks/{key}/pin", pin_form, methods=["POST"]),
    Route("/bricks/{key}/history", history, methods=["GET"]),
    Route("/tags/{tag}", tag_page, methods=["GET"]),
    Route("/tags/{tag}/feed.atom", tag_feed, methods=["GET"]),
    Route("/files/{name}", attached_file, methods=["GET"]),
    Route("/reviews/{key}", review_object, methods=["GET"]),
]
