"""Playback JWTs verify with the public key and carry the claims Livepeer checks."""

from __future__ import annotations

import base64
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from streamer.credentials import SecretError, load_secret
from streamer.livepeer.jwt import (
    LIVEPEER_JWT_HEADER,
    PlaybackTokenSigner,
    SigningKeyError,
    signer_from_env,
)


def private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_token_verifies_with_public_key_and_has_livepeer_claims(
    key: ec.EllipticCurvePrivateKey,
) -> None:
    signer = PlaybackTokenSigner(
        private_pem(key), issuer="streamer-test", clock=lambda: 1_700_000_000
    )
    token = signer.token("abcd1234playback", ttl_seconds=120)

    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["ES256"],
        options={"verify_exp": False},
        issuer="streamer-test",
    )
    assert claims["sub"] == "abcd1234playback"
    assert claims["action"] == "pull"
    assert claims["iat"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_120
    # `pub` is how Livepeer finds the signing key: the base64 of the public key PEM.
    assert base64.b64decode(claims["pub"]) == public_pem(key)
    assert LIVEPEER_JWT_HEADER == "Livepeer-Jwt"


def test_token_is_rejected_by_another_key_and_after_expiry(key: ec.EllipticCurvePrivateKey) -> None:
    token = PlaybackTokenSigner(private_pem(key), clock=lambda: 1_000).token("p", 60)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["ES256"], options={"verify_exp": False})
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, key.public_key(), algorithms=["ES256"])  # exp 1060: long past


def test_fresh_token_is_valid_now(key: ec.EllipticCurvePrivateKey) -> None:
    token = PlaybackTokenSigner(private_pem(key)).token("p", 300)
    assert jwt.decode(token, key.public_key(), algorithms=["ES256"])["sub"] == "p"


def test_key_id_goes_into_the_header(key: ec.EllipticCurvePrivateKey) -> None:
    token = PlaybackTokenSigner(private_pem(key), key_id="kid-1").token("p")
    assert jwt.get_unverified_header(token)["kid"] == "kid-1"
    signer = signer_from_env(
        {"LIVEPEER_SIGNING_KEY": private_pem(key), "LIVEPEER_SIGNING_KEY_ID": "kid-2"}
    )
    assert signer is not None
    assert jwt.get_unverified_header(signer.token("p"))["kid"] == "kid-2"
    assert "kid" not in jwt.get_unverified_header(PlaybackTokenSigner(private_pem(key)).token("p"))


def test_base64_key_as_the_signing_key_api_returns_it(key: ec.EllipticCurvePrivateKey) -> None:
    b64_private = base64.b64encode(private_pem(key).encode()).decode()
    b64_public = base64.b64encode(public_pem(key)).decode()
    signer = PlaybackTokenSigner(b64_private, b64_public)
    claims = jwt.decode(signer.token("p"), key.public_key(), algorithms=["ES256"])
    assert claims["pub"] == b64_public
    # A PEM public key is sent base64-encoded all the same.
    assert PlaybackTokenSigner(private_pem(key), public_pem(key).decode()).public_key_b64 == (
        b64_public
    )


def test_public_key_of_another_pair_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningKeyError, match="does not belong"):
        PlaybackTokenSigner(private_pem(key), base64.b64encode(public_pem(other)).decode())


def test_unusable_keys_are_refused_without_quoting_them() -> None:
    rsa_pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    p384 = private_pem(ec.generate_private_key(ec.SECP384R1()))
    garbage = "not-a-key-but-maybe-a-secret-123"
    for text in (
        rsa_pem,
        p384,
        garbage,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ):
        with pytest.raises(SigningKeyError) as info:
            PlaybackTokenSigner(text)
        assert text.strip().splitlines()[-1] not in str(info.value)
        assert garbage not in str(info.value)


def test_repr_hides_the_key(key: ec.EllipticCurvePrivateKey) -> None:
    pem = private_pem(key)
    signer = PlaybackTokenSigner(pem)
    body = "".join(pem.strip().splitlines()[1:-1])
    assert body[:20] not in repr(signer)
    assert "BEGIN" not in repr(signer)


def test_ttl_and_playback_id_are_validated(key: ec.EllipticCurvePrivateKey) -> None:
    signer = PlaybackTokenSigner(private_pem(key))
    with pytest.raises(ValueError):
        signer.token("p", 0)
    with pytest.raises(ValueError):
        signer.token("", 60)


def test_signer_from_env_reads_key_file(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    key_file.write_text("\n" + private_pem(key) + "\n\n")
    signer = signer_from_env({"LIVEPEER_SIGNING_KEY_FILE": str(key_file)})
    assert signer is not None
    jwt.decode(signer.token("p"), key.public_key(), algorithms=["ES256"])
    assert signer_from_env({}) is None


# -- load_secret ---------------------------------------------------------------------------


def test_load_secret_from_env_or_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("  s3cret-from-file \n")
    assert load_secret({"API_KEY": " s3cret \n"}, "API_KEY") == "s3cret"
    assert load_secret({"API_KEY_FILE": str(secret_file)}, "API_KEY") == "s3cret-from-file"
    assert load_secret({}, "API_KEY") is None
    assert load_secret({"API_KEY": "   "}, "API_KEY") is None


def test_load_secret_errors_name_the_variable_not_the_value(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="not both"):
        load_secret({"API_KEY": "s3cret", "API_KEY_FILE": "/x"}, "API_KEY")
    with pytest.raises(SecretError, match="API_KEY_FILE: cannot read") as info:
        load_secret({"API_KEY_FILE": str(tmp_path / "missing")}, "API_KEY")
    assert "s3cret" not in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretError, match="empty"):
        load_secret({"API_KEY_FILE": str(empty)}, "API_KEY")
