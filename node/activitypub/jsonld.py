"""JSON-LD processing that never leaves the machine.

Remote JSON-LD contexts are never fetched at run time (DESIGN: "no remote JSON-LD context
fetched at run time"). pyld only sees the contexts bundled in ``contexts/`` next to this
module, served by :func:`offline_document_loader`; any other URL is refused with
:class:`UnknownContextError`, which names the URL so an operator can bundle it.

Bundled documents (exact copies of the published texts, see ``CONTEXT_FILES``):
ActivityStreams 2.0, security v1, Data Integrity v1 and v2, Multikey v1, DID v1,
identity v1 (Mastodon's RsaSignature2017), the SWICG WebFinger context, and Pleroma's
``litepub-0.1`` (served for ``https://<any host>/schemas/litepub-0.1.jsonld``, since every
Pleroma/Akkoma instance publishes the same document under its own host).

Our own vocabulary lives in ``contexts/archipel-v1.jsonld``; it is inlined into every
document we emit (:func:`default_context`), the way Mastodon inlines its terms, so any
processor can expand our documents without fetching anything from us.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from pyld import jsonld as _pyld
from pyld.jsonld import JsonLdError

__all__ = [
    "AS2_CONTEXT",
    "SECURITY_V1_CONTEXT",
    "DATA_INTEGRITY_V1_CONTEXT",
    "DATA_INTEGRITY_V2_CONTEXT",
    "MULTIKEY_V1_CONTEXT",
    "DID_V1_CONTEXT",
    "IDENTITY_V1_CONTEXT",
    "WEBFINGER_CONTEXT",
    "ARCHIPEL_NAMESPACE",
    "ARCHIPEL_TERMS",
    "ARCHIPEL_CONTEXT_PATH",
    "CONTEXT_FILES",
    "JsonLdError",
    "UnknownContextError",
    "archipel_terms",
    "archipel_context_bytes",
    "bundled_context_urls",
    "default_context",
    "fep0837_terms",
    "proposal_context",
    "offline_document_loader",
    "install_offline_loader",
    "expand",
    "canonize",
]

AS2_CONTEXT: Final = "https://www.w3.org/ns/activitystreams"
SECURITY_V1_CONTEXT: Final = "https://w3id.org/security/v1"
DATA_INTEGRITY_V1_CONTEXT: Final = "https://w3id.org/security/data-integrity/v1"
DATA_INTEGRITY_V2_CONTEXT: Final = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1_CONTEXT: Final = "https://w3id.org/security/multikey/v1"
DID_V1_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
IDENTITY_V1_CONTEXT: Final = "https://w3id.org/identity/v1"
WEBFINGER_CONTEXT: Final = "https://purl.archive.org/socialweb/webfinger"

ARCHIPEL_NAMESPACE: Final = "https://archipel.social/ns#"

_ARCHIPEL_FILE: Final = "archipel-v1.jsonld"
ARCHIPEL_CONTEXT_PATH: Final = "contexts/" + _ARCHIPEL_FILE
"""Resource path of our context document inside ``node.activitypub`` (bytes: see
:func:`archipel_context_bytes`)."""

CONTEXT_FILES: Final[Mapping[str, str]] = {
    AS2_CONTEXT: "activitystreams.jsonld",
    SECURITY_V1_CONTEXT: "security-v1.jsonld",
    DATA_INTEGRITY_V1_CONTEXT: "data-integrity-v1.jsonld",
    DATA_INTEGRITY_V2_CONTEXT: "data-integrity-v2.jsonld",
    MULTIKEY_V1_CONTEXT: "multikey-v1.jsonld",
    DID_V1_CONTEXT: "did-v1.jsonld",
    IDENTITY_V1_CONTEXT: "identity-v1.jsonld",
    WEBFINGER_CONTEXT: "webfinger.jsonld",
}
"""Published context URL -> bundled file in ``contexts/``."""

_LITEPUB_PATH: Final = "/schemas/litepub-0.1.jsonld"
_LITEPUB_FILE: Final = "litepub-0.1.jsonld"

if TYPE_CHECKING:
    ARCHIPEL_TERMS: dict[str, Any]


class UnknownContextError(JsonLdError):
    """A document referenced a JSON-LD context that is not bundled with Archipel."""

    def __init__(self, url: str, reason: str = "it is not bundled with Archipel") -> None:
        self.url = url
        self.reason = reason
        message = (
            f"refusing to load JSON-LD context {url!r}: {reason}; "
            "remote contexts are never fetched (bundle it in node/activitypub/contexts/)"
        )
        super().__init__(
            message, "jsonld.LoadDocumentError", {"url": url}, "loading document failed"
        )

    def __str__(self) -> str:
        return str(self.args[0])


# --- bundled package data (read lazily, once) ---------------------------------------------


@functools.cache
def _read_context_file(name: str) -> bytes:
    return resources.files(__package__).joinpath("contexts", name).read_bytes()


@functools.cache
def _parsed_context_file(name: str) -> dict[str, Any]:
    parsed = json.loads(_read_context_file(name))
    if not isinstance(parsed, dict) or "@context" not in parsed:
        raise ValueError(f"bundled context {name} is not a JSON-LD context document")
    return parsed


def archipel_context_bytes() -> bytes:
    """The exact bytes of ``archipel-v1.jsonld``, to serve as ``application/ld+json``."""
    return _read_context_file(_ARCHIPEL_FILE)


def archipel_terms() -> dict[str, Any]:
    """A fresh copy of the inner ``@context`` object of ``archipel-v1.jsonld``."""
    return copy.deepcopy(_parsed_context_file(_ARCHIPEL_FILE)["@context"])


def __getattr__(name: str) -> Any:
    # ARCHIPEL_TERMS is read from package data on first access, never at import time.
    if name == "ARCHIPEL_TERMS":
        return archipel_terms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def bundled_context_urls() -> frozenset[str]:
    """The context URLs :func:`offline_document_loader` will serve (canonical spelling)."""
    return frozenset(CONTEXT_FILES)


def default_context() -> list[Any]:
    """The ``@context`` our documents carry.

    AS2 first; security v1 for ``publicKey``/``publicKeyPem`` (HTTP signatures, Mastodon);
    Data Integrity v2 for ``proof`` (FEP-8b32); DID v1 for ``assertionMethod`` (FEP-521a
    actors; the combination Fedify uses); Multikey v1 for ``Multikey`` keys; then our terms
    inline. Security v1 is not ``@protected``; the protected contexts after it only
    redefine terms identically (``id``, ``type``, ``controller``, ``alsoKnownAs``), which
    JSON-LD allows; ``tests/activitypub/test_jsonld.py`` expands the list with pyld to keep
    it that way. Terms after them must not redefine ``id``, ``type``, ``proof``,
    ``DataIntegrityProof``, ``assertionMethod``, ``controller``, ``alsoKnownAs``,
    ``service`` or ``Multikey``.
    """
    return [
        AS2_CONTEXT,
        SECURITY_V1_CONTEXT,
        DATA_INTEGRITY_V2_CONTEXT,
        DID_V1_CONTEXT,
        MULTIKEY_V1_CONTEXT,
        archipel_terms(),
    ]


#: The FEP-0837 (Federated Marketplace) terms, exactly as the FEP's examples inline them:
#: the FEP publishes no context URL, so they are inlined too, never fetched.
_FEP_0837_FILE: Final = "fep-0837.jsonld"


def fep0837_terms() -> dict[str, Any]:
    """A fresh copy of the ValueFlows terms of FEP-0837 (``Proposal``, ``Intent``,
    ``purpose``, ``publishes``, ``resourceQuantity``, ...), bundled in ``contexts/``."""
    return copy.deepcopy(_parsed_context_file(_FEP_0837_FILE)["@context"])


def proposal_context() -> list[Any]:
    """The ``@context`` of activities carrying offers and needs: ours, then FEP-0837's
    terms (last, so ``action`` and ``hasUnit`` are plain values as the FEP writes them)."""
    return [*default_context(), fep0837_terms()]


# --- the document loader -------------------------------------------------------------------


def _bundled_file_for(url: str) -> tuple[str, str]:
    """Map a context URL to (canonical URL, bundled file name) or raise UnknownContextError.

    http and https, a trailing ``/`` or ``#`` and the host's case are not significant;
    a query string, credentials or a port are (such URLs are refused).
    """
    if not isinstance(url, str):
        raise UnknownContextError(repr(url), "a context reference must be a URL string")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise UnknownContextError(url, f"it is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnknownContextError(url, "only http(s) context URLs can be bundled")
    if parts.query or "@" in parts.netloc or parts.port is not None:
        raise UnknownContextError(url)
    host = (parts.hostname or "").lower()
    path = parts.path.rstrip("/")
    for canonical, file_name in CONTEXT_FILES.items():
        known = urlsplit(canonical)
        if host == known.hostname and path == known.path:
            return canonical, file_name
    if host and path == _LITEPUB_PATH:
        return f"https://{host}{_LITEPUB_PATH}", _LITEPUB_FILE
    raise UnknownContextError(url)


def offline_document_loader(url: str, options: Any = None) -> dict[str, Any]:
    """pyld document loader serving only the bundled contexts; never touches the network.

    Raises :class:`UnknownContextError` (a ``pyld.jsonld.JsonLdError``) for anything else.
    """
    canonical, file_name = _bundled_file_for(url)
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": canonical,
        "document": copy.deepcopy(_parsed_context_file(file_name)),
    }


def install_offline_loader() -> None:
    """Make :func:`offline_document_loader` pyld's default loader (idempotent).

    Called by the app at startup so that no code path using pyld with default options
    can fetch a remote context.
    """
    if _pyld.get_document_loader() is not offline_document_loader:
        _pyld.set_document_loader(offline_document_loader)


# --- processing ----------------------------------------------------------------------------


def _unknown_context_in(exc: BaseException) -> UnknownContextError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UnknownContextError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _run(operation: Callable[[], Any]) -> Any:
    try:
        return operation()
    except UnknownContextError:
        raise
    except JsonLdError as exc:
        unknown = _unknown_context_in(exc)
        if unknown is not None:
            # pyld wraps loader errors in a generic "could not dereference" error;
            # surface the one that names the URL.
            raise UnknownContextError(unknown.url, unknown.reason) from exc
        raise


def _options() -> dict[str, Any]:
    # The loader is looked up at call time (tests may wrap it to add fixture contexts).
    return {"documentLoader": offline_document_loader}


def expand(doc: Mapping[str, Any] | list[Any]) -> list[Any]:
    """Expand ``doc`` with the bundled contexts only.

    Raises :class:`UnknownContextError` for an unbundled context, ``JsonLdError`` for
    invalid JSON-LD (e.g. a protected term redefinition).
    """
    options = _options()
    result = _run(lambda: _pyld.expand(copy.deepcopy(doc), options))
    return list(result)


def canonize(doc: Mapping[str, Any] | list[Any]) -> str:
    """RDF Dataset Canonicalization (URDNA2015, i.e. RDFC-1.0) of ``doc`` as N-Quads."""
    options = _options()
    options.update({"algorithm": "URDNA2015", "format": "application/n-quads"})
    result = _run(lambda: _pyld.normalize(copy.deepcopy(doc), options))
    if not isinstance(result, str):  # pragma: no cover - pyld returns str for n-quads
        raise TypeError("pyld did not return N-Quads")
    return result
