"""Coverage-guided fuzzing (atheris/libFuzzer) of the pure verification core.

    python fuzz/fuzz_verify.py -runs=200000          # or: make fuzz FUZZ_RUNS=200000
    python fuzz/fuzz_verify.py -max_total_time=600   # ten minutes

Each input becomes an ``Authorization`` header value or a token (raw text, an edit of a valid
token, or a well-formed JWS around fuzzer-chosen header and payload bytes) and goes through
``extract_bearer`` and ``verify_local`` against a real key set. The property: either an
``AuthError`` (the request is refused with its reason) or, only for a token the emulator minted,
an ``Identity``. Anything else (another exception, or any other token accepted) stops the
fuzzer with the input saved as ``crash-<sha1>``.

libFuzzer prints ``Done N runs in S second(s)`` at the end: that is the input count.
"""

from __future__ import annotations

import base64
import sys
import time

import atheris

with atheris.instrument_imports(include=["service.auth", "jwt"]):
    from service.auth.bearer import extract_bearer
    from service.auth.errors import AuthError
    from service.auth.keyset import KeySet
    from service.auth.verifier import VerificationPolicy, verify_local

from service.devcluster import DevCluster

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


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    mode = data.ConsumeIntInRange(0, 3)
    if mode == 0:
        header = data.ConsumeBytes(data.remaining_bytes()).decode("latin-1")
    elif mode == 1:
        header = "Bearer " + _edited(data)
    elif mode == 2:
        header = "Bearer " + _structured(data)
    else:
        header = "Bearer " + data.ConsumeUnicodeNoSurrogates(data.remaining_bytes())
    try:
        token = extract_bearer([header], MAX_TOKEN_BYTES)
        verify_local(token, _KEYS, _POLICY, _NOW)
    except AuthError:
        return  # refused, with a reason: the expected outcome for junk
    if token not in _VALID:
        raise AssertionError(f"accepted a token the cluster did not mint: {token[:120]!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
