"""Playback tokens for JWT-gated Livepeer streams (`playbackPolicy: {"type": "jwt"}`).

ES256 tokens with `sub` = playbackId, `action` = "pull", `iss`, `pub` (the base64 of the public
key PEM, which is how Livepeer finds the signing key), `iat`, `exp`. Send them as the
`Livepeer-Jwt` header (or the `jwt` query parameter).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from streamer.credentials import load_secret

LIVEPEER_JWT_HEADER = "Livepeer-Jwt"
LIVEPEER_JWT_QUERY = "jwt"
SIGNING_KEY_ENV = "LIVEPEER_SIGNING_KEY"
SIGNING_PUBLIC_KEY_ENV = "LIVEPEER_SIGNING_PUBLIC_KEY"
SIGNING_KEY_ID_ENV = "LIVEPEER_SIGNING_KEY_ID"
DEFAULT_ISSUER = "streamer"


class SigningKeyError(ValueError):
    """The signing key cannot be used; the message never quotes the key."""


class PlaybackTokenSigner:
    def __init__(
        self,
        private_key_pem: str,
        public_key_b64: str | None = None,
        issuer: str = DEFAULT_ISSUER,
        *,
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`private_key_pem`: a PEM, or the base64 of one as the signing-key API returns it."""
        self._key = _load_private_key(private_key_pem)
        derived = base64.b64encode(
            self._key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode("ascii")
        if public_key_b64 is not None and not _same_public_key(public_key_b64, derived):
            raise SigningKeyError("the public key does not belong to the signing key")
        # Livepeer matches `pub` against the key it registered: keep the given base64 verbatim.
        # A PEM given as such (it matches the key, checked above) is sent in canonical form.
        given = (public_key_b64 or "").strip()
        self.public_key_b64 = given if given and not given.startswith("-----") else derived
        self.issuer = issuer
        self.key_id = key_id or None  # the signing key's id in Studio: a `kid` header
        self._clock = clock

    def __repr__(self) -> str:
        return f"PlaybackTokenSigner(issuer={self.issuer!r}, key=<hidden>)"

    def token(self, playback_id: str, ttl_seconds: float = 300.0) -> str:
        if not playback_id:
            raise ValueError("playback_id is empty")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        now = int(self._clock())
        claims = {
            "sub": playback_id,
            "action": "pull",
            "iss": self.issuer,
            "pub": self.public_key_b64,
            "iat": now,
            "exp": now + max(1, round(ttl_seconds)),
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self._key, algorithm="ES256", headers=headers)


def signer_from_env(
    env: Mapping[str, str], issuer: str = DEFAULT_ISSUER
) -> PlaybackTokenSigner | None:
    """From LIVEPEER_SIGNING_KEY[_FILE], with the optional LIVEPEER_SIGNING_PUBLIC_KEY[_FILE]
    and LIVEPEER_SIGNING_KEY_ID; None when no signing key is configured."""
    private = load_secret(env, SIGNING_KEY_ENV)
    if private is None:
        return None
    public = load_secret(env, SIGNING_PUBLIC_KEY_ENV)
    key_id = env.get(SIGNING_KEY_ID_ENV, "").strip() or None
    return PlaybackTokenSigner(private, public, issuer, key_id=key_id)


def _load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    pem = _pem_bytes(text)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        # The library's message can describe the key material: do not pass it on.
        raise SigningKeyError("the signing key is not a readable unencrypted PEM key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError("the signing key must be an EC P-256 key (ES256)")
    return key


def _pem_bytes(text: str) -> bytes:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return text.encode("ascii", errors="replace")
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError("the signing key is neither PEM nor base64 of a PEM") from None
    if not decoded.lstrip().startswith(b"-----BEGIN"):
        raise SigningKeyError("the signing key is neither PEM nor base64 of a PEM")
    return decoded


def _same_public_key(given_b64: str, derived_b64: str) -> bool:
    try:
        given = serialization.load_pem_public_key(_pem_bytes(given_b64))
    except (SigningKeyError, ValueError, TypeError):
        raise SigningKeyError("the public key is not base64 of a PEM public key") from None
    derived = serialization.load_pem_public_key(base64.b64decode(derived_b64))
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return given.public_bytes(der, spki) == derived.public_bytes(der, spki)
