"""HTTP signature verification cost against the raw RSA floor, measured in the same run.

    .venv/bin/python -m bench.signatures [--seconds 2]

Prints RSA-2048 signs/s and verifies/s (the floor set by the machine), then signed-request
verifications/s through ``verify_request`` for draft-cavage and RFC 9421, and their ratio
to raw RSA verification: what our parsing, digesting and checks cost on top.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from node.activitypub.signatures import sign_cavage, sign_rfc9421, verify_request

URL = "https://lille.example/actors/lille/inbox"
KEY_ID = "https://gand.example/actors/gand#main-key"


def rate(work: Callable[[], object], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        work()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    seconds = parser.parse_args().seconds

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    message = b"x" * 200
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    now = datetime.now(UTC)
    body = json.dumps({"type": "Create", "id": "https://gand.example/a/1", "content": "x" * 1500})
    body_bytes = body.encode()
    base_headers = {"Content-Type": "application/activity+json"}

    sign_rate = rate(lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256()), seconds)
    verify_rate = rate(
        lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()), seconds
    )
    print(f"raw RSA-2048 sign            {sign_rate:10.0f} /s")
    print(f"raw RSA-2048 verify          {verify_rate:10.0f} /s   (the floor)")
    for name, signer in (("draft-cavage", sign_cavage), ("RFC 9421", sign_rfc9421)):
        headers = {
            **base_headers,
            **signer("POST", URL, base_headers, body_bytes, key, KEY_ID, now),
        }

        def check(headers: dict[str, str] = headers) -> None:
            result = verify_request(
                "POST", URL, headers, body_bytes, resolve_key=lambda _k: public, now=now
            )
            assert result.ok, result.message

        request_rate = rate(check, seconds)
        print(
            f"verify_request {name:13s} {request_rate:10.0f} /s   "
            f"ratio to raw verify: {request_rate / verify_rate:.2f}"
        )


if __name__ == "__main__":
    main()
