"""Coverage-guided fuzzing (atheris/libFuzzer) of the pure verification core.

    python fuzz/fuzz_verify.py -runs=200000          # or: make fuzz FUZZ_RUNS=200000
    python fuzz/fuzz_verify.py -max_total_time=600   # ten minutes

Each input becomes an ``Authorization`` header value or a token (raw text, an edit of a valid
token, a well-formed JWS around fuzzer-chosen header and payload bytes, or the valid token's
header and claims with fuzzer-chosen JSON values) and goes through
``extract_bearer`` and ``verify_local`` against a real key set. The property: either an
``AuthError`` (the request is refused with its reason) or, only for a token the emulator minted,
an ``Identity``. Anything else (another exception, or any other token accepted) stops the
fuzzer with the input saved as ``crash-<sha1>``.

libFuzzer prints ``Done N runs in S second(s)`` at the end: that is the input count.
"""

from __future__ import annotations

import base64
import gc
import json
import sys
import time
import types

import atheris

from compass_auth.core.bearer import extract_bearer
from compass_auth.core.errors import AuthError
from compass_auth.core.keyset import KeySet
from compass_auth.core.verifier import VerificationPolicy, verify_local
from compass_auth.testing import DevCluster

AUDIENCE = "compass-internal"
MAX_TOKEN_BYTES = 8192

_CLUSTER = DevCluster()  # not started: minting and the JWKS need no server
_EC_KID = _CLUSTER.add_key("EC")
_KEYS = KeySet.from_jwks(_CLUSTER.jwks(), _CLUSTER.issuer)
_POLICY = VerificationPolicy(audience=AUDIENCE, issuers=(), clock_skew=60,
                             max_token_bytes=MAX_TOKEN_BYTES)
_VALID = (_CLUSTER.mint(audiences=(AUDIENCE,)),
          _CLUSTER.mint(audiences=(AUDIENCE,), key_id=_EC_KID))
#: Fixed: the verdict for an input does not depend on when it runs (tokens live an hour).
_NOW = time.time()
_HEADER, _PAYLOAD, _SIGNATURE = _VALID[0].split(".")
_HEADER_JSON = json.loads(base64.urlsafe_b64decode(_HEADER + "=" * (-len(_HEADER) % 4)))
_CLAIMS_JSON = json.loads(base64.urlsafe_b64decode(_PAYLOAD + "=" * (-len(_PAYLOAD) % 4)))
_KID = str(_HEADER_JSON["kid"])
_CLAIM_NAMES = ["alg", "kid", "crit", "typ", "jku", "aud", "exp", "iat", "nbf", "iss", "sub",
                "jti", "kubernetes.io", "namespace", "serviceaccount", "pod", "name", "uid"]
_EDIT_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _edited(data: atheris.FuzzedDataProvider) -> str:
    token = bytearray(data.PickValueInList(list(_VALID)).encode("ascii"))
    for _ in range(data.ConsumeIntInRange(1, 8)):
        if not token:
            break
        position = data.ConsumeIntInRange(0, len(token) - 1)
        operation = data.ConsumeIntInRange(0, 3)
        char = _EDIT_ALPHABET[data.ConsumeIntInRange(0, len(_EDIT_ALPHABET) - 1)]
        if operation == 0:
            token[position] = char
        elif operation == 1:
            token.insert(position, char)
        elif operation == 2:
            del token[position:position + data.ConsumeIntInRange(1, 64)]
        else:
            del token[position:]
    return token.decode("ascii")


def _structured(data: atheris.FuzzedDataProvider) -> str:
    header = data.ConsumeBytes(data.ConsumeIntInRange(0, 300))
    payload = data.ConsumeBytes(data.ConsumeIntInRange(0, 1500))
    signature = _SIGNATURE if data.ConsumeBool() else _b64(data.ConsumeBytes(256))
    return f"{_b64(header)}.{_b64(payload)}.{signature}"


def _json_value(data: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    kind = data.ConsumeIntInRange(0, 8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return data.ConsumeBool()
    if kind == 2:
        return data.ConsumeInt(8)
    if kind == 3:
        return data.ConsumeFloat()
    if kind == 4:
        return data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 40))
    if kind == 5:
        return data.PickValueInList([AUDIENCE, _CLUSTER.issuer, _KID, "RS256", "ES256",
                                     "none", "system:serviceaccount:default:collector"])
    if kind == 6:
        return [_json_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))]
    return {data.PickValueInList(_CLAIM_NAMES): _json_value(data, depth + 1)
            for _ in range(data.ConsumeIntInRange(0, 3))}


def _claim_edits(data: atheris.FuzzedDataProvider) -> str:
    """The valid token's header and claims with a few values replaced or removed: reaches the
    claim checks and PyJWT with near-valid input (the signature then no longer matches)."""
    header, claims = dict(_HEADER_JSON), dict(_CLAIMS_JSON)
    for _ in range(data.ConsumeIntInRange(1, 4)):
        target = header if data.ConsumeIntInRange(0, 3) == 0 else claims
        name = data.PickValueInList(_CLAIM_NAMES)
        if data.ConsumeIntInRange(0, 4) == 0:
            target.pop(name, None)
        else:
            target[name] = _json_value(data)
    try:
        head, body = json.dumps(header).encode(), json.dumps(claims).encode()
    except (TypeError, ValueError):  # e.g. NaN is fine for json.dumps; this is belt and braces
        return _VALID[0]
    return f"{_b64(head)}.{_b64(body)}.{_SIGNATURE}"


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    mode = data.ConsumeIntInRange(0, 4)
    if mode == 0:
        header = data.ConsumeBytes(data.remaining_bytes()).decode("latin-1")
    elif mode == 1:
        header = "Bearer " + _edited(data)
    elif mode == 2:
        header = "Bearer " + _structured(data)
    elif mode == 3:
        header = "Bearer " + _claim_edits(data)
    else:
        header = "Bearer " + data.ConsumeUnicodeNoSurrogates(data.remaining_bytes())
    try:
        token = extract_bearer([header], MAX_TOKEN_BYTES)
        verify_local(token, _KEYS, _POLICY, _NOW)
    except AuthError:
        return  # refused, with a reason: the expected outcome for junk
    if token not in _VALID:
        raise AssertionError(f"accepted a token the cluster did not mint: {token[:120]!r}")


#: Whose coverage guides the fuzzer: our verification code, PyJWT, the json and base64 modules
#: they decode with, and this harness (its branches tell which input shapes were built). After
#: 100k runs: 431 edges and 151 corpus inputs. Not instrument_imports(include=...): 282 edges, 43
#: inputs. Not atheris.instrument_all(): 665 edges, but importing compass_auth loads
#: kubernetes-asyncio's thousands of generated functions, ~100 s to instrument.
_GUIDED = ("compass_auth.", "jwt", "json", "base64", __name__)


def _instrument() -> int:
    functions = [
        obj for obj in gc.get_objects()
        if isinstance(obj, types.FunctionType)
        and str(getattr(obj, "__module__", "")).startswith(_GUIDED)
    ]
    for function in functions:
        atheris.instrument_func(function)
    return len(functions)


def main() -> None:
    print(f"INFO: instrumented {_instrument()} functions", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
