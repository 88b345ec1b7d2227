"""Crafted tokens, table-driven, over real HTTP: each gets the status and reason it should.

Most are signed with the cluster's own key, so nothing but the crafted property can make them
fail. Every case runs twice: with local verification (the reason is checked exactly) and in
TokenReview fallback (discovery down), where the local pre-checks still reject what they can and
the API server refuses the rest: the status is the same and it is never 200.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from compass_auth.testing import DevCluster, Fault

from ..conftest import AUDIENCE, RunningService, StartService
from ..helpers import body, now
from .forge import Forge, b64, segments

Case = tuple[str, Callable[[Forge], str], int, str]

MALFORMED, UNSUPPORTED, UNKNOWN_KEY = "malformed", "unsupported_algorithm", "unknown_key"


def _deep(depth: int) -> bytes:
    return b'{"aud":["' + AUDIENCE.encode() + b'"],"x":' + b"[" * depth + b"]" * depth + b"}"


def _none_with_real_signature(f: Forge) -> str:
    _, payload, signature = f.valid().split(".")
    return f"{b64(json.dumps({'alg': 'none', 'kid': f.kid}).encode())}.{payload}.{signature}"


def _tampered(f: Forge) -> str:
    head, _, signature = f.valid().split(".")
    claims = f.claims(sub="system:serviceaccount:kube-system:admin")
    claims["kubernetes.io"]["namespace"] = "kube-system"
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"


def _swapped_signature(f: Forge) -> str:
    head, payload, _ = f.valid().split(".")
    return f"{head}.{payload}.{f.valid(service_account='other').split('.')[2]}"


def _non_canonical_signature(f: Forge) -> str:
    # The last base64url character of a 256-byte signature carries 4 padding bits: a lenient
    # decoder maps several spellings to the same bytes (JWS malleability). PyJWT refuses them.
    head, payload, signature = f.valid().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    return f"{head}.{payload}.{signature[:-1]}{alphabet[index ^ 1]}"


CASES: list[Case] = [
    ("control: valid", lambda f: f.valid(), 200, ""),
    # --- alg: none in every casing, HMAC confusion, key-type confusion ---------------------
    *[(f"alg {alg!r}", lambda f, alg=alg: f.unsigned(alg), 401, UNSUPPORTED)
      for alg in ("none", "None", "NONE", "nOnE", "none ", "\u0274one")],
    ("alg none with the real signature attached", _none_with_real_signature, 401, UNSUPPORTED),
    *[(f"alg {alg!r}", lambda f, alg=alg: f.with_header(alg=alg), 401, UNSUPPORTED)
      for alg in ("", "rs256", "RS256 ", "RS256\u200b", "RSA256")],
    ("alg missing", lambda f: f.with_header(alg=None), 401, UNSUPPORTED),
    ("alg a list", lambda f: f.with_header(alg=["RS256"]), 401, UNSUPPORTED),
    *[(f"{alg} keyed with the public key PEM",
       lambda f, alg=alg: f.signed({"alg": alg, "kid": f.kid}, f.claims()), 401, UNSUPPORTED)
      for alg in ("HS256", "HS384", "HS512")],
    ("RS256 header naming the EC key (signed with RSA)",
     lambda f: f.signed({"alg": "RS256", "kid": f.ec_kid}, f.claims(), alg="RS256"), 401,
     UNSUPPORTED),
    ("ES256 header naming the RSA key (signed with EC)",
     lambda f: f.signed({"alg": "ES256", "kid": f.kid}, f.claims(), kid=f.ec_kid), 401,
     UNSUPPORTED),
    ("ES384 header on the P-256 key",
     lambda f: f.signed({"alg": "ES384", "kid": f.ec_kid}, f.claims(), kid=f.ec_kid), 401,
     UNSUPPORTED),
    *[(f"{alg} with the RSA key",
       lambda f, alg=alg: f.signed({"alg": alg, "kid": f.kid}, f.claims()), 401, UNSUPPORTED)
      for alg in ("PS256", "RS384", "RS512")],
    # --- kid --------------------------------------------------------------------------------
    *[(f"kid {label}", lambda f, kid=kid: f.with_header(kid=kid), 401, UNKNOWN_KEY)
      for label, kid in [
          ("path traversal", "../../../../etc/passwd"),
          ("windows traversal", "..\\..\\..\\windows\\win.ini"),
          ("file URL", "file:///dev/zero"),
          ("SQL", "' OR '1'='1' --"),
          ("SQL drop", "x'; DROP TABLE keys; --"),
          ("huge (4000 characters)", "k" * 4000),
          ("unicode", "\u043a\u043b\u044e\u0447-\U0001f511"),
          ("control characters", "a\nlevel=ERROR msg=forged\r\x00\x1b[31m"),
      ]],
    ("kid too large for the token limit", lambda f: f.with_header(kid="k" * 9000), 401,
     "too_large"),
    *[(f"kid {label}", lambda f, kid=kid: f.with_header(kid=kid), 401, MALFORMED)
      for label, kid in [("a number", 7), ("a list", ["x"]), ("an object", {"a": 1}),
                         ("empty", "")]],
    ("kid missing", lambda f: f.with_header(kid=None), 401, MALFORMED),
    # --- critical and duplicate header parameters ---------------------------------------
    *[(f"crit {crit!r}", lambda f, crit=crit: f.with_header(crit=crit), 401, MALFORMED)
      for crit in (["exp"], [], "b64")],
    ("duplicate kid in the header",
     lambda f: f.signed(f'{{"alg":"RS256","kid":"{f.kid}","kid":"other"}}'.encode(),
                        f.claims(), alg="RS256"), 401, MALFORMED),
    ("duplicate alg in the header (none, then RS256)",
     lambda f: f.signed(f'{{"alg":"none","alg":"RS256","kid":"{f.kid}"}}'.encode(),
                        f.claims(), alg="RS256"), 401, MALFORMED),
    # --- payload shape: duplicates, nesting, size, invalid JSON --------------------------
    ("duplicate aud (wrong first, ours second)",
     lambda f: f.with_raw_payload(json.dumps(f.claims())[:-1].encode()
                                  + b',"aud":["vault"],"aud":["' + AUDIENCE.encode() + b'"]}'),
     401, MALFORMED),
    ("duplicate sub", lambda f: f.with_raw_payload(
        json.dumps(f.claims())[:-1].encode()
        + b',"sub":"system:serviceaccount:kube-system:admin"}'), 401, MALFORMED),
    ("deeply nested payload (2000 levels)", lambda f: f.with_raw_payload(_deep(2000)), 401,
     MALFORMED),
    ("deeply nested header", lambda f: f.signed(
        b'{"alg":"RS256","x":' + b"[" * 1500 + b"]" * 1500 + b"}", f.claims(), alg="RS256"),
     401, MALFORMED),
    ("huge payload (7 KiB, over AUTH_MAX_TOKEN_BYTES)",
     lambda f: f.with_claims(padding="p" * 7000), 401, "too_large"),
    ("payload not JSON", lambda f: f.with_raw_payload(b"not json"), 401, MALFORMED),
    ("payload a JSON list", lambda f: f.with_raw_payload(b'["aud"]'), 401, MALFORMED),
    ("payload with NaN", lambda f: f.with_raw_payload(
        json.dumps(f.claims())[:-1].encode() + b',"x":NaN}'), 401, MALFORMED),
    ("payload with invalid UTF-8", lambda f: f.with_raw_payload(b'{"sub":"\xff\xfe"}'), 401,
     MALFORMED),
    # --- aud of the wrong type --------------------------------------------------------------
    ("aud a plain string (allowed by RFC 7519)", lambda f: f.with_claims(aud=AUDIENCE), 200, ""),
    *[(f"aud {label}", lambda f, aud=aud: f.with_claims(aud=aud), 401, MALFORMED)
      for label, aud in [("a number", 7), ("an object", {AUDIENCE: True}), ("true", True),
                         ("a list with a number", [AUDIENCE, 7]),
                         ("a nested list", [[AUDIENCE]])]],
    *[(f"aud {label}", lambda f, aud=aud: f.with_claims(aud=aud), 401, "audience_mismatch")
      for label, aud in [("empty", []), ("upper case", [AUDIENCE.upper()]),
                         ("with a zero-width space", [AUDIENCE + "\u200b"]),
                         ("with a trailing space", [AUDIENCE + " "])]],
    ("aud missing", lambda f: f.with_claims(aud=None), 401, "audience_mismatch"),
    # --- exp, iat, nbf -------------------------------------------------------------------------
    ("exp a float in the future (RFC 7519 NumericDate)",
     lambda f: f.with_claims(exp=now() + 600.5), 200, ""),
    ("exp a float in the past", lambda f: f.with_claims(exp=now() - 600.5), 401, "expired"),
    *[(f"exp {label}", lambda f, exp=exp: f.with_claims(exp=exp), 401, MALFORMED)
      for label, exp in [("a string", "tomorrow"), ("a numeric string", str(now() + 600)),
                         ("true", True), ("false", False), ("huge", 10**40),
                         ("1e300", 1e300), ("a list", [now() + 600]), ("an object", {}),
                         ("negative", -1)]],
    ("exp 1e400 (infinity)", lambda f: f.with_raw_payload(
        json.dumps(f.claims(exp=None))[:-1].encode() + b',"exp":1e400}'), 401, MALFORMED),
    ("exp missing", lambda f: f.with_claims(exp=None), 401, MALFORMED),
    ("iat negative", lambda f: f.with_claims(iat=-5), 401, MALFORMED),
    ("nbf negative", lambda f: f.with_claims(nbf=-5), 401, MALFORMED),
    ("iat in the future", lambda f: f.with_claims(iat=now() + 3600), 401, "not_yet_valid"),
    ("iat a string", lambda f: f.with_claims(iat="yesterday"), 401, MALFORMED),
    # --- unicode in every field ------------------------------------------------------------
    ("sub with a Cyrillic homoglyph", lambda f: f.with_claims(
        sub="system:serviceaccount:default:c\u043ellector"), 401, MALFORMED),
    ("sub with a fullwidth colon", lambda f: f.with_claims(
        sub="system:serviceaccount:default\uff1acollector"), 401, MALFORMED),
    ("namespace claim in unicode", lambda f: f.with_claims(**{"kubernetes.io": {
        **f.claims()["kubernetes.io"], "namespace": "d\u00e9fault"}}), 401, MALFORMED),
    ("iss with a combining accent", lambda f: f.with_claims(
        iss=f.cluster.issuer + "\u0301"), 401, "issuer_mismatch"),
    ("jti in unicode (signed by the cluster: data, not trust)",
     lambda f: f.with_claims(jti="\u2603-\U0001f600\n"), 200, ""),
    # --- signatures ----------------------------------------------------------------------------
    ("payload changed, signature kept", _tampered, 401, "bad_signature"),
    ("another token's signature", _swapped_signature, 401, "bad_signature"),
    ("signature stripped", lambda f: f.valid().rsplit(".", 1)[0] + ".", 401, "bad_signature"),
    ("non-canonical base64 signature", _non_canonical_signature, 401, MALFORMED),
    ("signed by an attacker key under the cluster's kid",
     lambda f: f.attacker_signed({"alg": "RS256", "kid": f.kid}), 401, "bad_signature"),
    ("signed by an attacker key under its own kid",
     lambda f: f.attacker_signed({"alg": "RS256", "kid": "attacker"}), 401, UNKNOWN_KEY),
    ("legacy Secret-based token", lambda f: f.cluster.mint_legacy(), 401, "legacy_token"),
    # --- shape ---------------------------------------------------------------------------------
    ("two segments", lambda f: f.valid().rsplit(".", 1)[0], 401, MALFORMED),
    ("four segments", lambda f: f.valid() + ".e30", 401, MALFORMED),
    ("five segments (JWE-shaped)", lambda f: f.valid() + ".e30.e30", 401, MALFORMED),
    ("standard base64 alphabet", lambda f: f.valid().replace("-", "+").replace("_", "/")
     + ("" if "-" in f.valid() or "_" in f.valid() else "+"), 401, MALFORMED),
    ("padded segments", lambda f: f.valid() + "==", 401, MALFORMED),
]


#: Where the API server's TokenReview rightly answers otherwise. kube-apiserver builds the
#: username from the kubernetes.io claims and does not read ``sub``; a token whose ``sub``
#: disagrees with them can only be signed with the cluster's own key (the API server never
#: mints one). Locally it is malformed; in fallback the API server's answer stands.
FALLBACK_STATUS = {
    "sub with a Cyrillic homoglyph": 200,
    "sub with a fullwidth colon": 200,
}


@pytest.fixture(params=["jwks", "tokenreview"])
async def target(request: pytest.FixtureRequest, devcluster: DevCluster, forge: Forge,
                 start_service: StartService) -> tuple[RunningService, Forge, str]:
    if request.param == "tokenreview":
        devcluster.set_fault("discovery", Fault(status=403))  # never retried: fallback at once
    running: RunningService = await start_service(AUTH_REDISCOVERY_INTERVAL="60")
    assert running.authenticator.active_path() == request.param
    return running, forge, request.param


@pytest.mark.parametrize(("name", "build", "status", "reason"), CASES,
                         ids=[case[0] for case in CASES])
async def test_crafted_token(target: tuple[RunningService, Forge, str], name: str,
                             build: Callable[[Forge], str], status: int, reason: str) -> None:
    running, forge, path = target
    if path == "tokenreview":
        status = FALLBACK_STATUS.get(name, status)
    token = build(forge)
    response = await running.get(token=token)
    result = body(response)
    if status == 200:
        assert response.code == 200, result
        assert result["verified_by"] == path
        return
    assert response.code == status, result
    if path == "jwks":
        assert result["reason"] == reason
    else:
        # Pre-checks reject what they can; the API server refuses the rest.
        assert result["reason"] in (reason, "review_rejected"), result
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="compass-auth"')


def test_table_covers_what_the_issue_lists() -> None:
    names = " ".join(case[0] for case in CASES)
    for topic in ("'none'", "'NONE'", "HS256", "RS256 header naming the EC key",
                  "ES256 header naming the RSA key", "kid path traversal", "kid SQL",
                  "kid huge", "crit", "duplicate", "nested", "huge payload", "aud a number",
                  "exp a string", "exp a float", "exp true", "exp huge", "iat negative",
                  "unicode"):
        assert topic in names, topic
    assert len({case[0] for case in CASES}) == len(CASES)
    assert segments  # the helpers module is importable on its own
