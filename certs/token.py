"""Join tokens: creation on the cloud, CA pinning and verification (``pkg/security/token``).

Upstream token format: ``hex(sha256(CA certificate DER)) + "." + JWT``. The JWT is HS256,
its HMAC key is the CA private key's SEC1 DER bytes, and its only claim is ``exp`` (seconds).
So a token has exactly four dot-separated parts.

The edge imports this module before it has any key material, so it must stay cheap: no
``cryptography`` and no PyJWT (PyJWT imports ``cryptography`` when it is installed). HS256 is
small enough to do with ``hmac``/``hashlib``; the tests check interoperability with PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
from collections.abc import Mapping

from certs.errors import CAHashMismatch, TokenExpired, TokenMalformed, TokenSignatureInvalid

DEFAULT_TOKEN_LIFETIME = datetime.timedelta(hours=24)

# Byte-for-byte the header golang-jwt writes, so our tokens look like upstream's.
_JWT_HEADER = {"alg": "HS256", "typ": "JWT"}
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def ca_hash(ca_der: bytes) -> str:
    """Return the lowercase hex sha256 of a CA certificate's DER, as in token part 0."""
    return hashlib.sha256(ca_der).hexdigest()


def create_token(
    ca_der: bytes,
    ca_key_der: bytes,
    lifetime: datetime.timedelta = DEFAULT_TOKEN_LIFETIME,
    now: datetime.datetime | None = None,
) -> str:
    """Return ``<ca hash>.<jwt>`` valid for ``lifetime`` from ``now``."""
    expires_at = _as_utc(now) + lifetime
    payload = {"exp": int(expires_at.timestamp())}
    signing_input = _b64_json(_JWT_HEADER) + "." + _b64_json(payload)
    signature = _base64url_encode(_hs256(ca_key_der, signing_input))
    return f"{ca_hash(ca_der)}.{signing_input}.{signature}"


def split_token(token: str) -> tuple[str, str]:
    """Split a full token into (CA hash, JWT); raise TokenMalformed if it is not one."""
    parts = token.strip().split(".")
    if len(parts) != 4:
        raise TokenMalformed(
            f"the token has {len(parts)} dot-separated parts, expected 4 "
            "(<CA sha256>.<JWT header>.<JWT payload>.<JWT signature>)"
        )
    if not _HEX_SHA256.fullmatch(parts[0]):
        raise TokenMalformed("the token's first part is not a 64-character hex sha256 of the CA")
    return parts[0].lower(), ".".join(parts[1:])


def verify_ca_hash(token: str, ca_der: bytes) -> str:
    """Check that ``ca_der`` is the CA the token pins; return the token's JWT part."""
    token_hash, jwt = split_token(token)
    served_hash = ca_hash(ca_der)
    if not hmac.compare_digest(token_hash, served_hash):
        raise CAHashMismatch(token_hash, served_hash)
    return jwt


def verify_token(
    token_or_jwt: str, ca_key_der: bytes, now: datetime.datetime | None = None
) -> datetime.datetime:
    """Verify a full token or its JWT part against the CA key; return its expiry (UTC).

    The bootstrap server gets only the JWT (``Authorization: Bearer <jwt>``), while tools
    holding the whole token may pass it as is; the CA hash is not checked here.
    """
    header_b64, payload_b64, signature_b64 = _jwt_parts(token_or_jwt)
    _check_header(_decode_json(header_b64, "header"))
    expected = _hs256(ca_key_der, header_b64 + "." + payload_b64)
    if not hmac.compare_digest(expected, _base64url_decode(signature_b64, "signature")):
        raise TokenSignatureInvalid(
            "the token's signature does not match this CA key: it was issued by another CA "
            "or altered"
        )
    expires_at = _expiry(_decode_json(payload_b64, "payload"))
    # golang-jwt treats the token as expired from the exp second on (no leeway).
    if _as_utc(now) >= expires_at:
        raise TokenExpired(expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return expires_at


def _jwt_parts(token_or_jwt: str) -> tuple[str, str, str]:
    text = token_or_jwt.strip()
    if text.count(".") == 3:
        text = split_token(text)[1]
    parts = text.split(".")
    if len(parts) != 3:
        raise TokenMalformed(
            f"expected a token with 4 dot-separated parts or a JWT with 3, got {len(parts)}"
        )
    return parts[0], parts[1], parts[2]


def _check_header(header: object) -> None:
    if not isinstance(header, dict):
        raise TokenMalformed("the token's JWT header is not a JSON object")
    # Only HS256 is ever issued; accepting anything else (notably "none") would let a
    # token be forged without the CA key.
    if header.get("alg") != "HS256":
        raise TokenSignatureInvalid(
            f"the token's JWT algorithm is {header.get('alg')!r}; only HS256 is accepted"
        )


def _expiry(payload: object) -> datetime.datetime:
    if not isinstance(payload, dict):
        raise TokenMalformed("the token's JWT payload is not a JSON object")
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise TokenMalformed("the token's JWT payload has no numeric exp claim")
    try:
        return datetime.datetime.fromtimestamp(exp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise TokenMalformed(f"the token's exp claim {exp!r} is out of range") from error


def _hs256(key: bytes, signing_input: str) -> bytes:
    return hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()


def _b64_json(value: Mapping[str, object]) -> str:
    return _base64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _decode_json(part: str, what: str) -> object:
    try:
        return json.loads(_base64url_decode(part, what))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenMalformed(f"the token's JWT {what} is not valid JSON") from error


def _base64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _base64url_decode(part: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(part) or len(part) % 4 == 1:
        raise TokenMalformed(f"the token's JWT {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as error:
        raise TokenMalformed(f"the token's JWT {what} is not base64url") from error


def _as_utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    # A naive datetime is taken as UTC, the zone every certificate and token time is in.
    return now.replace(tzinfo=datetime.UTC) if now.tzinfo is None else now
