"""Object proofs: FEP-8b32 Data Integrity (EdDSA) and Mastodon's RsaSignature2017.

Pure: keys come in through ``resolve_key`` (filled beforehand, e.g. from fetched actors),
the time through ``now``. Verification returns a :class:`ProofResult` saying why it failed,
never raises for bad remote input; signing raises :class:`ProofError` on bad local input.
Suites:
* ``eddsa-jcs-2022`` (W3C "Data Integrity EdDSA Cryptosuites v1.0" §3.3): JCS (RFC 8785)
  canonical JSON, ``sha256(canon(proofConfig)) || sha256(canon(document))``, Ed25519,
  ``proofValue`` multibase base58btc. Our default for signed clearing activities.
* ``eddsa-rdfc-2022`` (same spec §3.2): the same with RDF Dataset Canonicalization
  (URDNA2015 = RDFC-1.0) through :mod:`node.activitypub.jsonld` (bundled contexts only).
* ``RsaSignature2017`` (Mastodon's Linked Data Signatures, ``signature`` block):
  ``hex(sha256(URDNA2015(options + identity/v1 context))) + hex(sha256(URDNA2015(doc)))``
  signed with RSA PKCS#1 v1.5 SHA-256, base64.

For the two RDF-based suites, documents using ``@graph``, ``@included`` or ``@reverse``
(or an inline alias of them) are refused, as Mastodon does since its GHSA fixes: such
documents can be restructured without changing their canonical form. Terms that do not
expand to an IRI (AS2's ``"@vocab": "_:"`` turns them into blank-node properties) are not
covered by an RDF signature; verification refuses them unless ``allow_uncovered_terms``.

Proof sets: a ``proof`` list is verified proof by proof against the document without any
proof; the document verifies only if every proof does (``ProofResult.proofs`` keeps each
outcome). Proof chains (``previousProof``) are not supported. A proof that carries an
``@context`` must carry exactly the document's (stricter than the spec's prefix rule).
When a document has both ``proof`` and ``signature``, only ``proof`` is checked.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from node.activitypub import jsonld
from node.activitypub.multikey import MultikeyError, multibase_decode, multibase_encode

__all__ = [
    "EDDSA_JCS_2022",
    "EDDSA_RDFC_2022",
    "RSA_SIGNATURE_2017",
    "MAX_CLOCK_SKEW",
    "ProofReason",
    "PublicKey",
    "KeyResolver",
    "ProofResult",
    "ProofError",
    "sign_eddsa_jcs_2022",
    "sign_eddsa_rdfc_2022",
    "sign_rsa_signature_2017",
    "verify_proof",
]

EDDSA_JCS_2022: Final = "eddsa-jcs-2022"
EDDSA_RDFC_2022: Final = "eddsa-rdfc-2022"
RSA_SIGNATURE_2017: Final = "RsaSignature2017"
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far in the future a proof's ``created`` may be (when ``now`` is given)."""

_DATA_INTEGRITY_PROOF: Final = "DataIntegrityProof"
_FORBIDDEN_KEYWORDS: Final = frozenset({"@graph", "@included", "@reverse"})
_SEC: Final = "https://w3id.org/security#"
ProofReason = Literal[
    "verified",
    "noProof",
    "unsupportedCryptosuite",
    "keyNotFound",
    "wrongKeyType",
    "invalidSignature",
    "malformed",
    "forbiddenKeyword",
    "unknownContext",
    "expired",
]

PublicKey = Ed25519PublicKey | RSAPublicKey
KeyResolver = Callable[[str], PublicKey | None]
"""Maps a verification method / key id to a key; returns None or raises LookupError if unknown."""


class ProofError(Exception):
    """A document or key that cannot be signed as asked (local input, not remote)."""


@dataclass(frozen=True)
class ProofResult:
    """Outcome of :func:`verify_proof`; ``reason`` says why it failed (``"verified"`` if ok).

    ``verification_method`` is the key id the proof claims (the RsaSignature2017
    ``creator``): the caller must still check that this key belongs to the actor the
    document speaks for.
    """

    ok: bool
    reason: ProofReason
    verification_method: str | None
    message: str
    cryptosuite: str | None = None
    uncovered_terms: tuple[str, ...] = ()
    proofs: tuple[ProofResult, ...] = ()

    @property
    def verification_methods(self) -> tuple[str, ...]:
        """Key ids of every proof checked (one unless the document carries a proof set)."""
        results = self.proofs or (self,)
        return tuple(r.verification_method for r in results if r.verification_method)


class _Failure(Exception):
    def __init__(self, reason: ProofReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- small helpers ---------------------------------------------------------------------------


def _xsd_datetime(moment: datetime) -> str:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ProofError("created must be a timezone-aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_datetime(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise _Failure("malformed", f"{field} must be an xsd:dateTime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Failure("malformed", f"{field} {value!r} is not an xsd:dateTime") from None
    if parsed.tzinfo is None:
        raise _Failure("malformed", f"{field} {value!r} has no timezone")
    return parsed


def _check_times(block: Mapping[str, Any], now: datetime | None) -> None:
    created = _parse_datetime(block["created"], "created") if "created" in block else None
    expires = _parse_datetime(block["expires"], "expires") if "expires" in block else None
    if now is None:
        return
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    if created is not None and created > now + MAX_CLOCK_SKEW:
        raise _Failure("malformed", f"created {block['created']} is in the future")
    if expires is not None and expires <= now:
        raise _Failure("expired", f"the proof expired at {block['expires']}")


def _jcs(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise _Failure("malformed", f"cannot canonicalize with JCS: {exc}") from None


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _forbidden_keyword(value: Any, in_context: bool = False) -> str | None:
    """First use of @graph/@included/@reverse (as a key or an inline alias), else None."""
    if isinstance(value, list):
        for item in value:
            found = _forbidden_keyword(item, in_context)
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        if key in _FORBIDDEN_KEYWORDS:
            return key
        if in_context and not key.startswith("@"):
            # a term definition: "g": "@graph" or "g": {"@id": "@included"}
            target = item.get("@id") if isinstance(item, dict) else item
            if isinstance(target, str) and target in _FORBIDDEN_KEYWORDS:
                return f"{target} (aliased as {key!r})"
        found = _forbidden_keyword(item, in_context or key == "@context")
        if found:
            return found
    return None


def _uncovered_terms(expanded: Any) -> set[str]:
    """Terms that expanded to blank-node IRIs (``_:x``); RDF canonicalization drops them."""
    found: set[str] = set()
    if isinstance(expanded, list):
        for item in expanded:
            found |= _uncovered_terms(item)
    elif isinstance(expanded, dict):
        for key, item in expanded.items():
            if key.startswith("_:"):
                found.add(key[2:])
            if key == "@type":
                types = item if isinstance(item, list) else [item]
                found |= {t[2:] for t in types if isinstance(t, str) and t.startswith("_:")}
            elif key != "@value":
                found |= _uncovered_terms(item)
    return found


def _expand_remote(document: Mapping[str, Any]) -> list[Any]:
    try:
        return jsonld.expand(document)
    except jsonld.UnknownContextError as exc:
        raise _Failure("unknownContext", str(exc)) from None
    except Exception as exc:  # pyld raises many types on hostile input
        raise _Failure("malformed", f"invalid JSON-LD: {_describe(exc)}") from None


def _canonize_remote(document: Any) -> bytes:
    try:
        return jsonld.canonize(document).encode("utf-8")
    except jsonld.UnknownContextError as exc:
        raise _Failure("unknownContext", str(exc)) from None
    except Exception as exc:
        raise _Failure("malformed", f"cannot canonicalize: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return f"{type(exc).__name__}: {message}"


def _rdf_covered(document: Mapping[str, Any], allow_uncovered_terms: bool) -> tuple[Any, set[str]]:
    keyword = _forbidden_keyword(document)
    if keyword:
        raise _Failure("forbiddenKeyword", f"documents using {keyword} are refused")
    expanded = _expand_remote(document)
    uncovered = _uncovered_terms(expanded)
    if uncovered and not allow_uncovered_terms:
        names = ", ".join(sorted(uncovered))
        raise _Failure(
            "malformed",
            f"terms not defined by the document's @context would not be signed: {names}",
        )
    return expanded, uncovered


def _resolve(resolve_key: KeyResolver, key_id: str, wanted: type) -> Any:
    try:
        key = resolve_key(key_id)
    except LookupError:
        key = None
    if key is None:
        raise _Failure("keyNotFound", f"no key known for {key_id}")
    if not isinstance(key, wanted):
        raise _Failure("wrongKeyType", f"{key_id} is a {type(key).__name__}, not {wanted.__name__}")
    return key


def _without(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in document.items() if k != key}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# --- Data Integrity (eddsa-jcs-2022, eddsa-rdfc-2022) ---------------------------------------


def _proof_config_hash_rdfc(proof_config: dict[str, Any]) -> bytes:
    expanded = _expand_remote(proof_config)
    node = expanded[0] if len(expanded) == 1 and isinstance(expanded[0], dict) else {}
    if _SEC + _DATA_INTEGRITY_PROOF not in node.get("@type", []) or (
        _SEC + "cryptosuite" not in node or _SEC + "verificationMethod" not in node
    ):
        raise _Failure(
            "malformed",
            "the document's @context does not define the Data Integrity terms "
            f"(add {jsonld.DATA_INTEGRITY_V2_CONTEXT})",
        )
    return _sha256(_canonize_remote(expanded))


def _hash_data(
    suite: str,
    proof_config: dict[str, Any],
    unsecured: dict[str, Any],
    allow_uncovered_terms: bool,
) -> tuple[bytes, set[str]]:
    if suite == EDDSA_JCS_2022:
        return _sha256(_jcs(proof_config)) + _sha256(_jcs(unsecured)), set()
    if "@context" not in unsecured:
        raise _Failure("malformed", f"{suite} needs a document with an @context")
    expanded, uncovered = _rdf_covered(unsecured, allow_uncovered_terms)
    document_hash = _sha256(_canonize_remote(expanded))
    return _proof_config_hash_rdfc(proof_config) + document_hash, uncovered


def _sign_data_integrity(
    suite: str,
    document: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    verification_method: str,
    created: datetime,
    proof_purpose: str,
) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise ProofError("the document to sign must be a JSON object")
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ProofError(f"{suite} signs with an Ed25519PrivateKey")
    if not isinstance(verification_method, str) or not verification_method:
        raise ProofError("verification_method must be the key id (a URL)")
    unsecured = _without(document, "proof")
    proof: dict[str, Any] = {
        "type": _DATA_INTEGRITY_PROOF,
        "cryptosuite": suite,
        "created": _xsd_datetime(created),
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    if "@context" in unsecured:
        proof["@context"] = copy.deepcopy(unsecured["@context"])
    try:
        hash_data, _ = _hash_data(suite, proof, unsecured, allow_uncovered_terms=False)
    except _Failure as failure:
        raise ProofError(f"cannot sign with {suite}: {failure.message}") from None
    proof["proofValue"] = multibase_encode(private_key.sign(hash_data))
    signed = _without(document, "proof")
    existing = document.get("proof")
    signed["proof"] = proof if existing is None else [*_as_list(copy.deepcopy(existing)), proof]
    return signed


def sign_eddsa_jcs_2022(
    document: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    verification_method: str,
    *,
    created: datetime,
    proof_purpose: str = "assertionMethod",
) -> dict[str, Any]:
    """Return a copy of ``document`` with an ``eddsa-jcs-2022`` proof attached.

    Follows W3C vc-di-eddsa §3.3.1: the proof carries the document's ``@context``.
    ``created`` must be timezone-aware; it is written in UTC to the second. An existing
    ``proof`` is kept and the new one appended (a proof set).
    """
    return _sign_data_integrity(
        EDDSA_JCS_2022, document, private_key, verification_method, created, proof_purpose
    )


def sign_eddsa_rdfc_2022(
    document: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    verification_method: str,
    *,
    created: datetime,
    proof_purpose: str = "assertionMethod",
) -> dict[str, Any]:
    """Like :func:`sign_eddsa_jcs_2022` with RDF canonicalization (vc-di-eddsa §3.2.1).

    The document's ``@context`` must define the Data Integrity terms (e.g. data-integrity
    v2) and every term it uses; only bundled contexts can be referenced.
    """
    return _sign_data_integrity(
        EDDSA_RDFC_2022, document, private_key, verification_method, created, proof_purpose
    )


def _verify_data_integrity(
    document: Mapping[str, Any],
    proof: Any,
    resolve_key: KeyResolver,
    now: datetime | None,
    expected_proof_purpose: str,
    allow_uncovered_terms: bool,
) -> ProofResult:
    method = proof.get("verificationMethod") if isinstance(proof, dict) else None
    method = method if isinstance(method, str) else None
    suite = proof.get("cryptosuite") if isinstance(proof, dict) else None
    suite = suite if isinstance(suite, str) else None
    try:
        if not isinstance(proof, dict):
            raise _Failure("malformed", "a proof must be a JSON object")
        if proof.get("type") != _DATA_INTEGRITY_PROOF:
            raise _Failure(
                "unsupportedCryptosuite", f"unsupported proof type {proof.get('type')!r}"
            )
        if suite not in (EDDSA_JCS_2022, EDDSA_RDFC_2022):
            raise _Failure("unsupportedCryptosuite", f"unsupported cryptosuite {suite!r}")
        if suite == EDDSA_RDFC_2022 and (keyword := _forbidden_keyword(document)):
            raise _Failure("forbiddenKeyword", f"documents using {keyword} are refused")
        if method is None:
            raise _Failure("malformed", "the proof has no verificationMethod")
        if proof.get("proofPurpose") != expected_proof_purpose:
            raise _Failure(
                "malformed",
                f"proofPurpose is {proof.get('proofPurpose')!r}, "
                f"expected {expected_proof_purpose!r}",
            )
        if "previousProof" in proof:
            raise _Failure("malformed", "proof chains (previousProof) are not supported")
        try:
            signature = multibase_decode(proof.get("proofValue"))  # type: ignore[arg-type]
        except MultikeyError as exc:
            raise _Failure("malformed", f"proofValue: {exc}") from None
        if len(signature) != 64:
            raise _Failure("malformed", "proofValue is not an Ed25519 signature (64 bytes)")
        _check_times(proof, now)

        unsecured = _without(document, "proof")
        options = _without(proof, "proofValue")
        if "@context" in options and options["@context"] != unsecured.get("@context"):
            # The spec lets the document's @context extend the proof's (later proofs of a
            # set may add contexts) and verifies against the proof's. We require equality:
            # otherwise contexts appended after signing would change what the terms mean
            # to any JSON-LD consumer while the proof still verified.
            raise _Failure(
                "malformed", "the document's @context differs from the one the proof was made with"
            )
        key = _resolve(resolve_key, method, Ed25519PublicKey)

        config = dict(options)
        if "@context" in unsecured:
            config["@context"] = unsecured["@context"]
        hash_data, uncovered = _hash_data(suite, config, unsecured, allow_uncovered_terms)
        message = f"{suite} proof verified"
        if not _ed25519_ok(key, signature, hash_data):
            # Drafts of eddsa-jcs-2022 before 2024 hashed the proof options without
            # @context; the document hash (which includes @context) is the same.
            legacy = suite == EDDSA_JCS_2022 and "@context" not in options
            legacy_hash = _sha256(_jcs(options)) + hash_data[32:]
            if not (legacy and _ed25519_ok(key, signature, legacy_hash)):
                raise _Failure("invalidSignature", f"the {suite} signature does not match")
            message += " (pre-2024 proof configuration without @context)"
    except _Failure as failure:
        return ProofResult(False, failure.reason, method, failure.message, suite)
    return ProofResult(True, "verified", method, message, suite, tuple(sorted(uncovered)))


def _ed25519_ok(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# --- RsaSignature2017 (Mastodon) -------------------------------------------------------------


def _rsa_signed_bytes(
    options: Mapping[str, Any], document: dict[str, Any], allow_uncovered_terms: bool
) -> tuple[bytes, set[str]]:
    config = {k: v for k, v in options.items() if k not in ("type", "id", "signatureValue")}
    config["@context"] = jsonld.IDENTITY_V1_CONTEXT
    expanded, uncovered = _rdf_covered(document, allow_uncovered_terms)
    options_hash = hashlib.sha256(_canonize_remote(config)).hexdigest()
    document_hash = hashlib.sha256(_canonize_remote(expanded)).hexdigest()
    return (options_hash + document_hash).encode("ascii"), uncovered


def sign_rsa_signature_2017(
    document: Mapping[str, Any],
    private_key: RSAPrivateKey,
    creator: str,
    *,
    created: datetime,
) -> dict[str, Any]:
    """Return a copy of ``document`` with a Mastodon-style ``signature`` block.

    For tests and interoperability; our own documents use Data Integrity proofs.
    """
    if not isinstance(document, Mapping):
        raise ProofError("the document to sign must be a JSON object")
    if not isinstance(private_key, RSAPrivateKey):
        raise ProofError("RsaSignature2017 signs with an RSAPrivateKey")
    options = {"type": RSA_SIGNATURE_2017, "creator": creator, "created": _xsd_datetime(created)}
    unsigned = _without(document, "signature")
    try:
        signed_bytes, _ = _rsa_signed_bytes(options, unsigned, allow_uncovered_terms=False)
    except _Failure as failure:
        raise ProofError(f"cannot sign with RsaSignature2017: {failure.message}") from None
    value = private_key.sign(signed_bytes, padding.PKCS1v15(), hashes.SHA256())
    unsigned["signature"] = {**options, "signatureValue": base64.b64encode(value).decode("ascii")}
    return unsigned


def _verify_rsa_signature_2017(
    document: Mapping[str, Any],
    signature: Any,
    resolve_key: KeyResolver,
    now: datetime | None,
    allow_uncovered_terms: bool,
) -> ProofResult:
    creator = signature.get("creator") if isinstance(signature, dict) else None
    creator = creator if isinstance(creator, str) else None
    try:
        if not isinstance(signature, dict):
            raise _Failure("malformed", "signature must be a JSON object")
        if signature.get("type") != RSA_SIGNATURE_2017:
            raise _Failure(
                "unsupportedCryptosuite", f"unsupported signature type {signature.get('type')!r}"
            )
        if creator is None:
            raise _Failure("malformed", "the signature has no creator")
        value = signature.get("signatureValue")
        try:
            raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if not raw:
            raise _Failure("malformed", "signatureValue is not base64")
        _check_times(signature, now)
        key = _resolve(resolve_key, creator, RSAPublicKey)
        signed_bytes, uncovered = _rsa_signed_bytes(
            signature, _without(document, "signature"), allow_uncovered_terms
        )
        try:
            key.verify(raw, signed_bytes, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise _Failure(
                "invalidSignature", "the RsaSignature2017 signature does not match"
            ) from None
    except _Failure as failure:
        return ProofResult(False, failure.reason, creator, failure.message, RSA_SIGNATURE_2017)
    return ProofResult(
        True,
        "verified",
        creator,
        "RsaSignature2017 signature verified",
        RSA_SIGNATURE_2017,
        tuple(sorted(uncovered)),
    )


# --- entry point -----------------------------------------------------------------------------


def verify_proof(
    document: Mapping[str, Any],
    resolve_key: KeyResolver,
    *,
    now: datetime | None = None,
    expected_proof_purpose: str = "assertionMethod",
    allow_uncovered_terms: bool = False,
) -> ProofResult:
    """Verify the ``proof`` (or, failing that, the RsaSignature2017 ``signature``) of ``document``.

    ``resolve_key(key_id)`` returns the key, or None / raises ``LookupError`` if unknown.
    With ``now``, a proof whose ``expires`` has passed or whose ``created`` is more than
    :data:`MAX_CLOCK_SKEW` ahead fails; without it (e.g. re-checking stored evidence) only
    the signature is checked. Several proofs must all verify.
    """
    if not isinstance(document, Mapping):
        return ProofResult(False, "malformed", None, "the document must be a JSON object")
    if "proof" in document:
        proofs = _as_list(document["proof"])
        if not proofs:
            return ProofResult(False, "noProof", None, "the proof set is empty")
        results = tuple(
            _verify_data_integrity(
                document, proof, resolve_key, now, expected_proof_purpose, allow_uncovered_terms
            )
            for proof in proofs
        )
        if len(results) == 1:
            return results[0]
        failed = next((r for r in results if not r.ok), None)
        head = failed or results[0]
        message = (
            f"proof {results.index(failed) + 1} of {len(results)} failed: {failed.message}"
            if failed
            else f"all {len(results)} proofs verified"
        )
        uncovered = tuple(sorted({t for r in results for t in r.uncovered_terms}))
        return ProofResult(
            failed is None,
            head.reason,
            head.verification_method,
            message,
            head.cryptosuite,
            uncovered,
            results,
        )
    if "signature" in document:
        return _verify_rsa_signature_2017(
            document, document["signature"], resolve_key, now, allow_uncovered_terms
        )
    return ProofResult(False, "noProof", None, "the document has neither proof nor signature")
