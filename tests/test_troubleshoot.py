"""Every troubleshooting log line (issue 5), provoked against the emulator.

Each test asserts the stable message, its level, the fix, and that no token reached the log.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from compass_auth.apiserver import troubleshoot
from compass_auth.apiserver.connection import KubeConfigError, connect
from compass_auth.apiserver.discovery import DiscoveryClient, FetchError
from compass_auth.apiserver.troubleshoot import Diagnosis, Troubleshooter
from compass_auth.keys import issuer_check
from compass_auth.logs.text import LogText
from compass_auth.testing import DevCluster
from compass_auth.testing.core import DEFAULT_ISSUER
from compass_auth.verification.authenticator import Authenticator

from .conftest import log_text
from .helpers import ROOT, review_once, settings_from

UNRESOLVABLE = "api.compass-test.invalid"
NEW_ISSUER = "https://oidc.compass-test.invalid/clusters/c1"


#: What an application with plain ``logging.basicConfig()`` prints: the message, no fields.
PLAIN = logging.Formatter(logging.BASIC_FORMAT)
#: The fields a diagnosis may carry; each must be readable in the plain line (issue 19).
FIELDS = ("host", "error", "path", "status", "subject", "fix")


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    """The records whose stable message (the ``MSG_*`` prefix) is ``message``."""
    return [r for r in caplog.records if isinstance(r.msg, LogText) and r.msg.message == message]


def the_line(caplog: pytest.LogCaptureFixture, message: str, level: int = logging.ERROR) -> (
    logging.LogRecord
):
    [record] = lines(caplog, message)
    assert record.levelno == level
    assert record.name == "compass_auth.apiserver.troubleshoot"
    plain = PLAIN.format(record)
    assert plain.startswith(
        f"{logging.getLevelName(level)}:compass_auth.apiserver.troubleshoot:{message}")
    shown = [name for name in FIELDS if hasattr(record, name)]
    assert "fix" in shown
    for name in shown:
        assert str(getattr(record, name)) in plain, f"{name} missing from: {plain}"
    return record


def environ_for(devcluster: DevCluster, sa_dir: Path, **env: str) -> dict[str, str]:
    return {**devcluster.incluster_environ(), "AUTH_SERVICEACCOUNT_DIR": str(sa_dir), **env}


async def fetch_once(environ: dict[str, str]) -> None:
    api = await connect(settings_from(environ), environ)
    try:
        await DiscoveryClient(api).fetch()
    finally:
        await api.close()


@pytest.fixture
def flat_sa_dir(devcluster: DevCluster, tmp_path: Path) -> Path:
    return devcluster.write_serviceaccount_dir(tmp_path / "sa", layout="flat")


@pytest.fixture(autouse=True)
def _no_token_in_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    text = log_text(caplog)
    for token_file in tmp_path.rglob("token"):
        if token_file.is_file() and token_file.stat().st_size:
            assert token_file.read_text().strip() not in text


# --- configuration time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        ("missing", "no such file"),
        ("a directory", "Is a directory"),
        ("not PEM", "not a PEM certificate bundle"),
    ],
)
async def test_ca_file_missing_or_unreadable(
    devcluster: DevCluster, flat_sa_dir: Path, caplog: pytest.LogCaptureFixture,
    breakage: str, error: str,
) -> None:
    ca = flat_sa_dir / "ca.crt"
    ca.unlink()
    if breakage == "a directory":
        ca.mkdir()
    elif breakage == "not PEM":
        ca.write_text("this is not a certificate\n")
    environ = environ_for(devcluster, flat_sa_dir)
    with pytest.raises(KubeConfigError, match="AUTH_SERVICEACCOUNT_DIR"):
        await connect(settings_from(environ), environ)
    record = the_line(caplog, troubleshoot.MSG_CA_FILE)
    assert record.path == str(ca)  # type: ignore[attr-defined]
    assert error in record.error  # type: ignore[attr-defined]
    assert "automountServiceAccountToken" in record.fix  # type: ignore[attr-defined]


async def test_kubeconfig_ca_data_that_is_not_pem(
    devcluster: DevCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    document = yaml.safe_load(kubeconfig.read_text())
    document["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        b"garbage").decode()
    kubeconfig.write_text(yaml.safe_dump(document))
    environ = {"KUBECONFIG": str(kubeconfig)}
    with pytest.raises(KubeConfigError, match="kubeconfig"):
        await connect(settings_from(environ), environ)
    record = the_line(caplog, troubleshoot.MSG_CA_FILE)
    assert "certificate-authority" in record.fix  # type: ignore[attr-defined]


async def test_token_file_missing(
    devcluster: DevCluster, flat_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (flat_sa_dir / "token").unlink()
    environ = environ_for(devcluster, flat_sa_dir)
    with pytest.raises(KubeConfigError, match="AUTH_SERVICEACCOUNT_DIR"):
        await connect(settings_from(environ), environ)
    record = the_line(caplog, troubleshoot.MSG_TOKEN_FILE)
    assert record.path == str(flat_sa_dir / "token")  # type: ignore[attr-defined]


# --- calls to the API server ----------------------------------------------------------------


async def test_dns_failure_suggests_kubernetes_service_ip(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = environ_for(devcluster, devcluster_sa_dir, KUBERNETES_SERVICE_HOST=UNRESOLVABLE)
    with pytest.raises(FetchError):
        await fetch_once(environ)
    record = the_line(caplog, troubleshoot.MSG_DNS)
    assert record.host == UNRESOLVABLE  # type: ignore[attr-defined]
    assert "KUBERNETES_SERVICE_IP" in record.fix  # type: ignore[attr-defined]
    assert "kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'" in (
        record.fix)  # type: ignore[attr-defined]


async def test_tls_failure_in_bypass_mode_names_the_host_and_the_setting(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_server_certificate(names=("127.0.0.1",))
    environ = environ_for(devcluster, devcluster_sa_dir, KUBERNETES_SERVICE_IP="127.0.0.1")
    with pytest.raises(FetchError):
        await fetch_once(environ)
    record = the_line(caplog, troubleshoot.MSG_TLS)
    assert record.host == "kubernetes.default.svc"  # type: ignore[attr-defined]
    assert "AUTH_API_SERVER_NAME" in record.fix  # type: ignore[attr-defined]
    assert "127.0.0.1" in record.fix  # type: ignore[attr-defined]
    assert str(devcluster_sa_dir / "ca.crt") in record.fix  # type: ignore[attr-defined]


async def test_tls_failure_with_a_certificate_from_another_ca(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_server_certificate(self_signed=True)
    with pytest.raises(FetchError):
        await fetch_once(environ_for(devcluster, devcluster_sa_dir))
    record = the_line(caplog, troubleshoot.MSG_TLS)
    assert "certificate" in record.error.lower()  # type: ignore[attr-defined]
    assert "AUTH_API_SERVER_NAME" not in record.fix  # type: ignore[attr-defined]


async def test_connection_refused(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.pause()
    with pytest.raises(FetchError):
        await fetch_once(environ_for(devcluster, devcluster_sa_dir))
    record = the_line(caplog, troubleshoot.MSG_CONNECT)
    assert "NetworkPolicy" in record.fix  # type: ignore[attr-defined]


async def test_401_from_discovery(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.revoke_token((devcluster_sa_dir / "token").read_text())
    with pytest.raises(FetchError, match="401"):
        await fetch_once(environ_for(devcluster, devcluster_sa_dir))
    record = the_line(caplog, troubleshoot.MSG_UNAUTHORIZED)
    assert str(devcluster_sa_dir / "token") in record.fix  # type: ignore[attr-defined]


async def test_403_from_discovery_gives_the_rbac_command(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_discovery_allowed(False)
    with pytest.raises(FetchError, match="403"):
        await fetch_once(environ_for(devcluster, devcluster_sa_dir))
    record = the_line(caplog, troubleshoot.MSG_FORBIDDEN)
    assert ("kubectl create clusterrolebinding compass-auth-issuer-discovery "
            "--clusterrole=system:service-account-issuer-discovery "
            "--serviceaccount=compass-system:compass-auth") in record.fix  # type: ignore[attr-defined]


async def test_403_from_tokenreview_gives_the_rbac_command(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_tokenreview_allowed(False)
    environ = environ_for(devcluster, devcluster_sa_dir)
    api = await connect(settings_from(environ), environ)
    try:
        assert await review_once(api, devcluster.mint()) == 403
    finally:
        await api.close()
    record = the_line(caplog, troubleshoot.MSG_FORBIDDEN_TOKENREVIEW)
    assert ("kubectl create clusterrolebinding compass-auth-tokenreview "
            "--clusterrole=system:auth-delegator "
            "--serviceaccount=compass-system:compass-auth") in record.fix  # type: ignore[attr-defined]
    assert not lines(caplog, troubleshoot.MSG_FORBIDDEN)


async def test_a_repeated_failure_is_logged_once_until_it_recovers(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = environ_for(devcluster, devcluster_sa_dir)
    api = await connect(settings_from(environ), environ)
    client = DiscoveryClient(api)
    try:
        devcluster.set_discovery_allowed(False)
        for _ in range(3):
            with pytest.raises(FetchError):
                await client.fetch()
        assert len(lines(caplog, troubleshoot.MSG_FORBIDDEN)) == 1
        devcluster.set_discovery_allowed(True)
        await client.fetch()
        devcluster.set_discovery_allowed(False)
        with pytest.raises(FetchError):
            await client.fetch()
        assert len(lines(caplog, troubleshoot.MSG_FORBIDDEN)) == 2
    finally:
        await api.close()


def test_identical_diagnoses_repeat_after_five_minutes(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    troubleshooter = Troubleshooter(clock=lambda: now[0])
    dns = Diagnosis(troubleshoot.MSG_DNS, "fix it")
    tls = Diagnosis(troubleshoot.MSG_TLS, "fix it")
    for moment, diagnosis in ((0, dns), (10, dns), (20, tls), (30, dns), (40, dns), (331, dns)):
        now[0] = moment
        troubleshooter.report(diagnosis)
    assert [r.msg.message for r in caplog.records] == [
        troubleshoot.MSG_DNS, troubleshoot.MSG_TLS, troubleshoot.MSG_DNS, troubleshoot.MSG_DNS]


# --- issuers --------------------------------------------------------------------------------


async def start_authenticator(environ: dict[str, str]) -> Authenticator:
    authenticator = await Authenticator.connect(settings_from(environ), environ)
    authenticator.start()
    await authenticator.wait_started()
    return authenticator


async def test_own_token_issuer_differs_from_discovery(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The folder was written with the original issuer; discovery now names another one, as in
    # an issuer migration where discovery names only the first --service-account-issuer.
    devcluster.set_issuer(NEW_ISSUER)
    authenticator = await start_authenticator(environ_for(devcluster, devcluster_sa_dir))
    await authenticator.close()
    record = the_line(caplog, troubleshoot.MSG_ISSUER_OWN_TOKEN, logging.WARNING)
    assert record.error == f"expected {NEW_ISSUER!r}, got {DEFAULT_ISSUER!r}"  # type: ignore[attr-defined]
    assert "AUTH_ISSUER" in record.fix  # type: ignore[attr-defined]
    assert not lines(caplog, troubleshoot.MSG_ISSUER_PINNED)


async def test_listing_both_issuers_silences_the_cross_check(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_issuer(NEW_ISSUER)
    environ = environ_for(devcluster, devcluster_sa_dir,
                          AUTH_ISSUER=f"{NEW_ISSUER},{DEFAULT_ISSUER}")
    await (await start_authenticator(environ)).close()
    assert not [r for r in caplog.records if r.name == "compass_auth.apiserver.troubleshoot"]


async def test_pinned_issuers_that_miss_the_discovered_one(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pinned = "https://kubernetes.default.svc"
    environ = environ_for(devcluster, devcluster_sa_dir, AUTH_ISSUER=pinned)
    await (await start_authenticator(environ)).close()
    record = the_line(caplog, troubleshoot.MSG_ISSUER_PINNED, logging.WARNING)
    assert record.error == f"expected {pinned!r}, got {DEFAULT_ISSUER!r}"  # type: ignore[attr-defined]
    own = the_line(caplog, troubleshoot.MSG_ISSUER_OWN_TOKEN, logging.WARNING)
    assert own.error == f"expected {pinned!r}, got {DEFAULT_ISSUER!r}"  # type: ignore[attr-defined]


async def test_no_cross_check_when_the_issuers_agree(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await (await start_authenticator(environ_for(devcluster, devcluster_sa_dir))).close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("discovered", "pinned", "own", "expected"),
    [
        ("https://a", (), "https://a", []),
        ("https://a", (), None, []),
        ("https://a", (), "https://b", [troubleshoot.MSG_ISSUER_OWN_TOKEN]),
        ("https://a", ("https://a", "https://b"), "https://b", []),
        ("https://a", ("https://b",), "https://b", [troubleshoot.MSG_ISSUER_PINNED]),
        ("https://a", ("https://b",), "https://a",
         [troubleshoot.MSG_ISSUER_PINNED, troubleshoot.MSG_ISSUER_OWN_TOKEN]),
    ],
)
def test_cross_check_table(
    discovered: str, pinned: tuple[str, ...], own: str | None, expected: list[str]
) -> None:
    findings = issuer_check.cross_check_issuers(discovered, pinned, own)
    assert [finding.message for finding in findings] == expected
    assert all(finding.level == logging.WARNING for finding in findings)


def test_skipping_the_issuer_check_skips_the_cross_check(caplog: pytest.LogCaptureFixture) -> None:
    from compass_auth.core.keyset import KeySet

    keys = KeySet(issuer="https://a", keys={})
    issuer_check.IssuerCrossCheck((), lambda: None, skip=True).on_keys(None, keys)
    issuer_check.IssuerCrossCheck(("https://b",), lambda: None).on_keys(keys, keys)
    assert not caplog.records


# --- the docs ---------------------------------------------------------------------------------


def test_every_line_is_documented_with_its_fix() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    missing = [message for message in troubleshoot.ALL_MESSAGES if f"`{message}`" not in text]
    assert not missing

