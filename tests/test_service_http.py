"""The example service over real HTTP, verifying against the emulator over real TLS."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from typing import Any, ClassVar

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from compass_auth import AuthenticatedHandler
from compass_auth.core.bearer import fingerprint
from compass_auth.testing import Fault

from .conftest import AUDIENCE, COLLECTOR, RunningService, StartService, log_text, wait_until
from .helpers import body, raw_request

REALM = 'Bearer realm="compass-auth"'


async def test_valid_token_reaches_the_handler(running: RunningService) -> None:
    response = await running.get(token=running.token())
    assert response.code == 200
    assert body(response) == {
        "subject": COLLECTOR,
        "namespace": "default",
        "service_account": "collector",
        "verified_by": "jwks",
    }


async def test_missing_token_gets_a_challenge_without_error_code(running: RunningService) -> None:
    response = await running.get()
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == REALM
    assert body(response) == {"error": "unauthorized", "reason": "missing",
                              "error_description": "a bearer token is required"}


async def test_other_schemes_count_as_missing(running: RunningService) -> None:
    response = await running.get(Authorization="Basic dXNlcjpwYXNz")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == REALM


@pytest.mark.parametrize(
    ("name", "mint_kwargs", "reason", "description"),
    [
        ("expired", {"issued_at": int(time.time()) - 7200, "lifetime": 3600}, "expired",
         "the token has expired"),
        ("wrong audience", {"audiences": ("vault",)}, "audience_mismatch",
         f"the token audience does not include {AUDIENCE}"),
        ("wrong issuer", {"issuer": "https://evil.example"}, "issuer_mismatch",
         "the token issuer is not accepted"),
        ("not yet valid", {"issued_at": int(time.time()) + 600}, "not_yet_valid",
         "the token is not valid yet"),
    ],
)
async def test_rejected_tokens_get_401_with_the_reason(
    running: RunningService, name: str, mint_kwargs: dict[str, Any], reason: str, description: str
) -> None:
    response = await running.get(token=running.token(**mint_kwargs))
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'{REALM}, error="invalid_token", error_description="{description}"'
    )
    assert body(response) == {"error": "invalid_token", "error_description": description,
                              "reason": reason}
    assert response.headers["Cache-Control"] == "no-store"


async def test_legacy_and_forged_tokens_are_rejected(running: RunningService) -> None:
    cluster = running.cluster
    legacy = cluster.mint_legacy(namespace="default", service_account="collector")
    forged = cluster.sign_raw({"alg": "none", "kid": cluster.signing_key_id},
                              {"sub": COLLECTOR, "aud": [AUDIENCE], "iss": cluster.issuer,
                               "exp": int(time.time()) + 600}, alg="none")
    for token, reason in ((legacy, "legacy_token"), (forged, "unsupported_algorithm")):
        response = await running.get(token=token)
        assert (response.code, body(response)["reason"]) == (401, reason)


@pytest.mark.parametrize(
    ("name", "header", "status", "reason"),
    [
        ("garbage", "Bearer garbage", 401, "malformed"),
        ("bad base64", "Bearer @@@.###.$$$", 400, "malformed_header"),
        ("three dots of nothing", "Bearer ..", 401, "malformed"),
        ("non-JSON segments", "Bearer aGVsbG8.d29ybGQ.c2ln", 401, "malformed"),
        ("two tokens", "Bearer a.b.c d.e.f", 400, "malformed_header"),
        ("scheme only", "Bearer", 400, "malformed_header"),
        ("huge token", "Bearer " + "A" * 9000, 401, "too_large"),
    ],
)
async def test_client_garbage_is_never_a_500(
    running: RunningService, name: str, header: str, status: int, reason: str
) -> None:
    response = await running.get(Authorization=header)
    assert response.code == status
    assert body(response)["reason"] == reason
    if status == 400:
        assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("name", "claims"),
    [
        ("exp as a string", {"exp": "tomorrow"}),
        ("aud as a number", {"aud": 7}),
        ("iat as a list", {"iat": [1]}),
        ("exp huge", {"exp": 10**40}),
        ("kubernetes.io a string", {"kubernetes.io": "x"}),
    ],
)
async def test_signed_tokens_with_wrong_claim_types_are_401(
    running: RunningService, name: str, claims: dict[str, Any]
) -> None:
    response = await running.get(token=running.token(claims_override=claims))
    assert response.code == 401
    assert body(response)["reason"] == "malformed"


async def test_non_ascii_header_bytes_are_400(running: RunningService) -> None:
    port = running.service.port
    assert port is not None
    status, payload = await raw_request(
        port, b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Authorization: Bearer \xff\xfe\xe9t\xc3\xa9\r\n\r\n")
    assert status == 400
    assert json.loads(payload)["reason"] == "malformed_header"


async def test_oversized_headers_never_reach_the_handler(running: RunningService) -> None:
    port = running.service.port
    assert port is not None
    status, payload = await raw_request(
        port, b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Authorization: Bearer " + b"A" * 70000 + b"\r\n\r\n")
    assert status == 431  # answered, never a silent close (issue 11)
    assert json.loads(payload)["error"] == "request_header_fields_too_large"


async def test_subject_not_on_the_service_allow_list_is_403(start_service: StartService) -> None:
    running: RunningService = await start_service(AUTH_ALLOWED_SUBJECTS=COLLECTOR)
    assert (await running.get(token=running.token())).code == 200
    response = await running.get(token=running.token(service_account="intruder"))
    assert response.code == 403
    assert response.headers["WWW-Authenticate"] == (
        f'{REALM}, error="insufficient_scope", '
        'error_description="this service account may not call this endpoint"'
    )
    assert body(response)["reason"] == "subject_not_allowed"


class Reports(AuthenticatedHandler):
    allowed_subjects: ClassVar[frozenset[str]] = frozenset({COLLECTOR})

    async def get(self) -> None:
        who = self.current_user
        self.write({"caller": who.service_account, "namespace": who.namespace})


class Preflight(AuthenticatedHandler):
    allow_unauthenticated_preflight = True

    async def options(self) -> None:
        self.set_status(204)

    async def get(self) -> None:
        self.write({"ok": True})


class ForgetfulPrepare(AuthenticatedHandler):
    async def prepare(self) -> None:  # forgot `await super().prepare()`
        pass

    async def get(self) -> None:
        self.write({"secret": "data"})


@pytest.fixture
async def custom_app(running: RunningService) -> Any:
    app = tornado.web.Application(
        [(r"/reports", Reports), (r"/preflight", Preflight), (r"/forgetful", ForgetfulPrepare)],
        authenticator=running.authenticator,
    )
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await server.close_all_connections()


async def test_handler_allow_list_narrows_access(running: RunningService, custom_app: str) -> None:
    client = AsyncHTTPClient()
    allowed = await client.fetch(custom_app + "/reports", raise_error=False,
                                 headers={"Authorization": f"Bearer {running.token()}"})
    assert allowed.code == 200
    assert json.loads(allowed.body) == {"caller": "collector", "namespace": "default"}
    other = await client.fetch(
        custom_app + "/reports", raise_error=False,
        headers={"Authorization": f"Bearer {running.token(service_account='intruder')}"})
    assert other.code == 403


async def test_allow_lists_apply_to_cached_tokens(
    running: RunningService, custom_app: str
) -> None:
    intruder = running.token(service_account="intruder")
    assert (await running.get(token=intruder)).code == 200  # verified and cached
    response = await AsyncHTTPClient().fetch(custom_app + "/reports", raise_error=False,
                                             headers={"Authorization": f"Bearer {intruder}"})
    assert response.code == 403


async def test_preflight_can_be_exempted(running: RunningService, custom_app: str) -> None:
    client = AsyncHTTPClient()
    preflight = await client.fetch(custom_app + "/preflight", method="OPTIONS", raise_error=False)
    assert preflight.code == 204
    get = await client.fetch(custom_app + "/preflight", raise_error=False)
    assert get.code == 401


async def test_forgetting_super_prepare_fails_closed(
    running: RunningService, custom_app: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await AsyncHTTPClient().fetch(custom_app + "/forgetful", raise_error=False)
    assert response.code == 500
    assert b"secret" not in response.body
    assert json.loads(response.body)["error"] == "internal_server_error"
    assert "ran without authentication" in caplog.text


async def test_other_errors_are_json(running: RunningService) -> None:
    missing = await running.get("/nope")
    assert missing.code == 404
    assert body(missing) == {"error": "not_found", "error_description": "Not Found"}
    method = await running.client.fetch(running.base_url + "/whoami", method="DELETE",
                                        raise_error=False)
    assert method.code == 401  # authentication comes before method dispatch


async def test_rejections_are_logged_with_a_fingerprint_never_the_token(
    running: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    token = running.token(audiences=("vault",))
    await running.get(token=token)
    valid = running.token()
    await running.get(token=valid)
    records = [r for r in caplog.records if r.getMessage().startswith("token verification failed")]
    assert len(records) == 1
    record = records[0]
    assert record.levelname == "WARNING"
    assert record.token_fp == fingerprint(token)  # type: ignore[attr-defined]
    assert record.reason == "audience_mismatch"  # type: ignore[attr-defined]
    assert "vault" in record.error  # type: ignore[attr-defined]
    text = log_text(caplog)
    assert "level=WARN" in text
    # Structured: the stable message, then each field once (the plain text carries them too).
    assert 'msg="token verification failed" reason=audience_mismatch status=401' in text
    for secret in (token, valid, token.split(".")[2], valid.split(".")[2]):
        assert secret not in text


async def test_plain_logging_shows_the_reason_and_fingerprint(
    running: RunningService,
) -> None:
    """An application with plain ``logging.basicConfig()`` (no extra fields printed) still
    sees why a token was refused, and which (issue 12)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    library = logging.getLogger("compass_auth")
    library.addHandler(handler)
    try:
        token = running.token(audiences=("vault",))
        assert (await running.get(token=token)).code == 401
    finally:
        library.removeHandler(handler)
    (line,) = [line for line in stream.getvalue().splitlines() if "verification failed" in line]
    assert line.startswith(
        "WARNING:compass_auth.verification.authenticator:token verification failed: ")
    assert "audience_mismatch" in line
    assert f"token_fp={fingerprint(token)}" in line
    assert token.split(".")[2] not in line


async def test_503_with_retry_after_when_no_way_to_verify_is_left(
    start_service: StartService,
) -> None:
    running: RunningService
    running = await start_service(wait=False, AUTH_REDISCOVERY_INTERVAL="30")
    running.cluster.set_fault("all", Fault(status=503))  # discovery, JWKS and TokenReview
    # Start-up discovery is retrying; no key set yet, and TokenReview fails too.
    response = await running.get(token=running.token())
    assert response.code == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "WWW-Authenticate" not in response.headers
    assert body(response) == {
        "error": "temporarily_unavailable",
        "error_description": "token verification is temporarily unavailable",
        "reason": "tokenreview_unavailable",
    }
    ready = await running.get("/readyz")
    assert ready.code == 503
    assert body(ready)["ready"] is False
    assert (await running.get("/healthz")).code == 200


async def test_readyz_reports_the_active_path(running: RunningService) -> None:
    response = await running.get("/readyz")
    assert response.code == 200
    status = body(response)
    assert status["ready"] is True
    assert status["path"] == "jwks"
    assert status["issuer"] == running.cluster.issuer
    assert running.cluster.signing_key_id in status["keys"]


async def test_readyz_is_the_librarys_readiness(running: RunningService) -> None:
    """``Authenticator.readiness()`` (docs/verification.md#readiness) is what /readyz shows."""
    readiness = await running.authenticator.readiness()
    assert (readiness.ready, readiness.path, readiness.mode) == (True, "jwks", "auto")
    assert readiness.reason == "verifying tokens locally with the key set"
    status = body(await running.get("/readyz"))
    # The fields /readyz has always had, plus the reason; ages move on between the two calls.
    assert set(status) == {"ready", "path", "mode", "reason", "issuer", "keys",
                           "keys_age_seconds", "last_error", "tokenreview_cache_entries",
                           "revocation_check"}
    expected = readiness.as_dict()
    assert {k: v for k, v in status.items() if k != "keys_age_seconds"} == {
        k: v for k, v in expected.items() if k != "keys_age_seconds"}


async def test_rotated_key_is_fetched_on_first_sight(running: RunningService) -> None:
    cluster = running.cluster
    before = running.api_calls("jwks")
    new_kid = cluster.rotate_key()
    response = await running.get(token=running.token())
    assert response.code == 200
    assert running.api_calls("jwks") == before + 1
    record = cluster.request_log[-1]
    assert record.endpoint == "jwks"
    assert record.headers_subset.get("Cache-Control") == "no-cache"
    assert new_kid in body(await running.get("/readyz"))["keys"]


async def test_flood_of_unknown_kids_costs_one_fetch(running: RunningService) -> None:
    before = running.api_calls("jwks")
    statuses = set()
    for index in range(200):
        token = running.token(header_override={"kid": f"random-{index}"})
        statuses.add((await running.get(token=token)).code)
    assert statuses == {401}
    assert running.api_calls("jwks") - before <= 1


async def test_removed_key_is_rejected_after_the_refresh(running: RunningService) -> None:
    cluster = running.cluster
    # A second published key (not the one that signs the service's own credentials).
    extra_kid = cluster.add_key("EC")
    token = running.token(key_id=extra_kid)
    assert (await running.get(token=token)).code == 200  # found by the unknown-kid refetch
    # Its background confirmation (issue 21) ends before the key goes: else the API server
    # refuses the token first and the answer is token_revoked, not the local unknown_key.
    revocation = running.authenticator.revocation
    assert revocation is not None
    await wait_until(lambda: revocation.in_flight() == 0)
    cluster.remove_key(extra_kid)
    await running.authenticator.local.keys.refresh()
    response = await running.get(token=token)
    assert response.code == 401
    assert body(response)["reason"] == "unknown_key"
    assert (await running.get(token=running.token())).code == 200


async def test_cached_keys_keep_working_when_the_api_server_goes_away(
    running: RunningService,
) -> None:
    running.cluster.pause()
    try:
        assert (await running.get(token=running.token())).code == 200
        assert (await running.get("/readyz")).code == 200
    finally:
        running.cluster.resume()


async def test_in_cluster_configuration(start_service: StartService) -> None:
    running: RunningService = await start_service(in_cluster=True)
    response = await running.get(token=running.token())
    assert response.code == 200
    assert body(response)["subject"] == COLLECTOR
