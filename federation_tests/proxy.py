"""A small HTTP reverse proxy on loopback, in front of a node, that a test can make misbehave.

The node's public URL is the proxy's port; the node itself listens on another port. By default
every request is forwarded verbatim (method, path, headers including ``Host``, body) and the
answer comes back as it is, so HTTP signatures made for the public URL still verify. A test
installs rules that match requests (``activity("Offer", "Settlement")``) and say what to do
with them instead:

- ``drop``: answer 502 without forwarding (``close=True``: close the connection, no answer);
- ``swallow``: answer 202 without forwarding: the message is lost, the sender thinks not;
- ``duplicate``: forward it twice (``copies`` times), answer with the last answer;
- ``delay``: hold it ``seconds`` seconds, or until ``rule.release()`` when ``seconds`` is
  ``None``, then forward it; with ``answer_now=True`` the sender gets 202 at once and the
  message is delivered later (a queue in the network, as when a message is slow to arrive);
- ``forward``: forward it (with ``hook``: only to be told that it passed).

Every rule may carry a ``hook`` called (in a thread, before the action) with the request as
seen, e.g. to SIGKILL the receiving node exactly when a given message arrives; and a number of
``times`` it applies, after which it lets requests through. ``log`` records every request with
what was done with it and the upstream's status.

The proxy runs its own asyncio loop in a daemon thread, so that synchronous tests use it
without ceremony. One request per client connection (answers carry ``Connection: close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Proxy", "Request", "Rule", "activity", "any_request"]

ACTIONS = ("forward", "drop", "swallow", "duplicate", "delay")
MAX_HEAD = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


@dataclass
class Request:
    """A request as the proxy saw it, and what became of it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    #: What the proxy did: forwarded, dropped, closed, swallowed, duplicated, delayed...
    action: str = ""
    #: The upstream's status for each forwarded copy (None: the upstream did not answer).
    statuses: list[int | None] = field(default_factory=list)
    #: The status the sender got (None: the connection was closed without an answer).
    answered: int | None = None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str = "") -> str:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    @property
    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def activity_type(self) -> str | None:
        data = self.json
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            return str(data["type"])
        return None

    @property
    def object_type(self) -> str | None:
        data = self.json
        obj = data.get("object") if isinstance(data, dict) else None
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            return str(obj["type"])
        return None

    def describe(self) -> str:
        kind = self.activity_type
        if kind:
            kind += f"{{{self.object_type}}}" if self.object_type else ""
        return f"{self.method} {self.target} {kind or ''} -> {self.action} {self.statuses}"

    def raw(self) -> bytes:
        """The request to send upstream: as received, with ``Connection: close``."""
        lines = [f"{self.method} {self.target} {self.version}"]
        for key, value in self.headers:
            if key.lower() in HOP_BY_HOP or key.lower() == "content-length":
                continue
            lines.append(f"{key}: {value}")
        if self.body or self.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


Matcher = Callable[[Request], bool]


def any_request(request: Request) -> bool:
    return True


def activity(
    type: str | None = None,  # noqa: A002 -- the AS2 property's name
    object_type: str | None = None,
    *,
    path_suffix: str = "inbox",
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> Matcher:
    """Match a POST to an inbox whose JSON body is an activity of ``type`` (any when None)
    whose embedded ``object`` has ``object_type`` (any when None), and ``where(body)``."""

    def match(request: Request) -> bool:
        if request.method != "POST" or not request.path.rstrip("/").endswith(path_suffix):
            return False
        data = request.json
        if not isinstance(data, dict):
            return False
        if type is not None and data.get("type") != type:
            return False
        if object_type is not None and request.object_type != object_type:
            return False
        return where is None or bool(where(data))

    return match


@dataclass(eq=False)
class Rule:
    """What to do with requests that ``match``; see the module's docstring."""

    match: Matcher
    action: str = "forward"
    #: ``delay``: how long to hold; None: until ``release()``.
    seconds: float | None = None
    #: ``delay``: answer 202 at once and deliver later.
    answer_now: bool = False
    #: ``drop``: close the connection instead of answering 502.
    close: bool = False
    #: ``duplicate``: how many times to forward.
    copies: int = 2
    #: How many requests the rule applies to (None: all).
    times: int | None = None
    hook: Callable[[Request], object] | None = None
    hits: list[Request] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action: one of {', '.join(ACTIONS)}")

    def release(self) -> None:
        """Let the requests held by a ``delay`` rule without ``seconds`` go (now and later)."""
        self._released.set()

    @property
    def exhausted(self) -> bool:
        return self.times is not None and len(self.hits) >= self.times

    def wait_hits(self, count: int = 1, timeout: float = 30.0) -> list[Request]:
        """Block until the rule has matched ``count`` requests; raise after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.hits) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the rule matched {len(self.hits)} of {count} in {timeout}s")
            time.sleep(0.05)
        return list(self.hits)


class Proxy:
    """``Proxy(upstream_port).start()``; ``url`` is where senders connect."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream_host = host
        self.upstream_port = upstream_port
        self.host = host
        self.port = port
        self.rules: list[Rule] = []
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- life -----------------------------------------------------------------------------

    def start(self) -> Proxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port)
                )
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:  # noqa: BLE001 -- reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or loop.is_closed():
            return

        async def shutdown() -> None:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(10)
        self._server = None

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- rules ----------------------------------------------------------------------------

    def add(self, match: Matcher, action: str = "forward", **options: Any) -> Rule:
        """Install a rule (checked after the ones before it); return it."""
        rule = Rule(match, action, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def drop(self, match: Matcher, **options: Any) -> Rule:
        return self.add(match, "drop", **options)

    def swallow(self, match: Matcher, **options: Any) -> Rule:
        return self.add(match, "swallow", **options)

    def duplicate(self, match: Matcher, **options: Any) -> Rule:
        return self.add(match, "duplicate", **options)

    def delay(self, match: Matcher, seconds: float | None = None, **options: Any) -> Rule:
        return self.add(match, "delay", seconds=seconds, **options)

    def on(self, match: Matcher, hook: Callable[[Request], object], **options: Any) -> Rule:
        """Call ``hook`` when a matching request arrives (then forward it)."""
        return self.add(match, "forward", hook=hook, **options)

    def remove(self, rule: Rule) -> None:
        """Uninstall a rule; requests it holds are released."""
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)
        rule.release()

    def clear(self) -> None:
        """Uninstall every rule, releasing what they hold, and forget the log."""
        with self._lock:
            rules, self.rules = self.rules, []
            self.log = []
        for rule in rules:
            rule.release()

    def seen(self, match: Matcher = any_request) -> list[Request]:
        with self._lock:
            return [request for request in self.log if match(request)]

    def _rule_for(self, request: Request) -> Rule | None:
        with self._lock:
            self.log.append(request)
            for rule in self.rules:
                if not rule.exhausted and rule.match(request):
                    rule.hits.append(request)
                    return rule
        return None

    # -- serving --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            request = await _read_request(reader)
            if request is not None:
                await self._handle(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, request: Request, writer: asyncio.StreamWriter) -> None:
        rule = self._rule_for(request)
        if rule is None:
            request.action = "forwarded"
            await self._forward_to(request, writer)
            return
        if rule.hook is not None:
            await asyncio.get_running_loop().run_in_executor(None, rule.hook, request)
        if rule.action == "forward":
            request.action = "forwarded"
            await self._forward_to(request, writer)
        elif rule.action == "drop":
            request.action = "closed" if rule.close else "dropped"
            if not rule.close:
                await _answer(writer, 502, b"dropped by the test proxy")
                request.answered = 502
        elif rule.action == "swallow":
            request.action = "swallowed"
            await _answer(writer, 202, b"")
            request.answered = 202
        elif rule.action == "duplicate":
            request.action = "duplicated"
            for _ in range(rule.copies - 1):
                request.statuses.append(await self._forward(request))
            await self._forward_to(request, writer)  # the sender gets the last answer
        elif rule.action == "delay":
            request.action = "delayed"
            if rule.answer_now:
                await _answer(writer, 202, b"")
                request.answered = 202
                writer.close()
            await self._hold(rule)
            if rule.answer_now:
                request.statuses.append(await self._forward(request))
            else:
                await self._forward_to(request, writer)

    async def _hold(self, rule: Rule) -> None:
        if rule.seconds is not None:
            await asyncio.sleep(rule.seconds)
            return
        released = False
        while not released:  # a short wait in a thread, so that stop() can cancel us
            released = await asyncio.to_thread(rule._released.wait, 0.1)

    async def _forward(self, request: Request) -> int | None:
        """Send the request upstream; its status (None when it did not answer)."""
        try:
            status, _ = await self._exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            return None
        return status

    async def _forward_to(self, request: Request, writer: asyncio.StreamWriter) -> None:
        try:
            status, response = await self._exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            request.statuses.append(None)
            await _answer(writer, 502, b"the upstream did not answer")
            request.answered = 502
            return
        request.statuses.append(status)
        request.answered = status
        writer.write(response)
        await writer.drain()

    async def _exchange(self, request: Request) -> tuple[int, bytes]:
        """One round trip upstream: the status and the answer to relay (Connection: close)."""
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            writer.write(request.raw())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            rest = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        kept = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower() != "connection"]
        head = "\r\n".join([lines[0], *kept, "Connection: close"]).encode("latin-1")
        return status, head + b"\r\n\r\n" + rest


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("request head too long") from None
    if len(head) > MAX_HEAD:
        raise ValueError("request head too long")
    lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    request = Request(method, target, version, headers, b"")
    if request.header("transfer-encoding").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        request.body = bytes(body)
    else:
        length = int(request.header("content-length", "0") or 0)
        request.body = await reader.readexactly(length) if length else b""
    return request


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {202: "Accepted", 502: "Bad Gateway"}.get(status, "")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: text/plain\r\nConnection: close\r\n\r\n".encode("latin-1")
        + body
    )
    await writer.drain()
