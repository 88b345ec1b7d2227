"""Settings are validated once, name the variable on error, and match config/auth.env."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest

from compass_auth.settings import VARIABLES, AuthSettings, SettingsError
from service.settings import AUDIENCE as EXAMPLE_AUDIENCE
from service.settings import VARIABLES as SERVICE_VARIABLES
from service.settings import ServiceSettings

from .helpers import ROOT, settings_from


def test_the_audience_has_no_default() -> None:
    """Issue 18, finding 10: services that forget AUTH_AUDIENCE must not share a default (they
    would accept each other's tokens); the sentence names the variable."""
    with pytest.raises(SettingsError, match=r"^AUTH_AUDIENCE is not set\. .*no default"):
        AuthSettings.from_env({})
    with pytest.raises(SettingsError, match="AUTH_AUDIENCE"):
        AuthSettings.from_env({"AUTH_ALLOWED_SUBJECTS": "system:serviceaccount:a:b"})
    [audience] = [variable for variable in VARIABLES if variable.name == "AUTH_AUDIENCE"]
    assert audience.default is None


@pytest.mark.parametrize("environ", [
    {"AUTH_AUDIENCE": "https://kubernetes.default.svc"},
    {"AUTH_AUDIENCE": "https://kubernetes.default.svc.cluster.local"},
    {"AUTH_AUDIENCE": "HTTPS://Kubernetes.Default.Svc/"},
    {"AUTH_AUDIENCE": "https://oidc.example/cluster", "AUTH_ISSUER": "https://oidc.example/cluster"},
])
def test_the_api_servers_own_audience_is_refused(environ: dict[str, str]) -> None:
    """Every pod's automounted token carries the API server's audience: a service that accepted
    it would let any workload in, and could replay its callers' tokens to the API server."""
    with pytest.raises(SettingsError, match=r"^AUTH_AUDIENCE=.* own audience: every pod's"):
        AuthSettings.from_env(environ)
    with pytest.raises(SettingsError, match="AUTH_AUDIENCE"):
        AuthSettings(audience=environ["AUTH_AUDIENCE"],
                     issuers=tuple(filter(None, [environ.get("AUTH_ISSUER")])))
    assert AuthSettings.from_env({**environ, "AUTH_AUDIENCE": "reports"}).audience == "reports"


def test_defaults() -> None:
    settings = AuthSettings.from_env({"AUTH_AUDIENCE": "reports"})
    assert settings.audience == "reports"
    assert settings.allowed_subjects == frozenset()
    assert settings.issuers == ()
    assert settings.clock_skew == 60
    assert settings.in_cluster is False
    assert str(settings.serviceaccount_dir) == "/var/run/secrets/kubernetes.io/serviceaccount"
    # In-cluster details (issue 5): every Kubernetes-aware option is off by default.
    assert settings.insecure_skip_issuer_check is False
    assert settings.api_server_name == "kubernetes.default.svc"
    assert settings.service_ip is None
    assert settings.require_pod_bound is False
    assert settings.max_token_lifetime is None
    assert settings.stale_tokens == "off"


def test_values_are_parsed() -> None:
    settings = AuthSettings.from_env({
        "AUTH_AUDIENCE": "reports",
        "AUTH_ALLOWED_SUBJECTS": "system:serviceaccount:a:b, system:serviceaccount:c:d",
        "AUTH_ISSUER": "https://kubernetes.default.svc,https://kubernetes.default.svc.cluster.local",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBECONFIG": "/tmp/one:/tmp/two",
    })
    assert settings.audience == "reports"
    assert settings.allowed_subjects == {"system:serviceaccount:a:b", "system:serviceaccount:c:d"}
    assert settings.issuers == ("https://kubernetes.default.svc",
                                "https://kubernetes.default.svc.cluster.local")
    assert settings.in_cluster is True
    assert str(settings.kubeconfig) == "/tmp/one"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"AUTH_AUDIENCE": "  "}, "AUTH_AUDIENCE"),
        ({"AUTH_ALLOWED_SUBJECTS": "default:collector"}, "AUTH_ALLOWED_SUBJECTS"),
        ({"AUTH_ALLOWED_SUBJECTS": "system:serviceaccount:ns"}, "AUTH_ALLOWED_SUBJECTS"),
        ({"AUTH_ISSUER": "http://insecure"}, "AUTH_ISSUER"),
        ({"AUTH_CLOCK_SKEW": "soon"}, "AUTH_CLOCK_SKEW"),
        ({"AUTH_CLOCK_SKEW": "-1"}, "AUTH_CLOCK_SKEW"),
        ({"AUTH_MAX_TOKEN_BYTES": "1.5"}, "AUTH_MAX_TOKEN_BYTES"),
        ({"AUTH_API_TIMEOUT": "0"}, "AUTH_API_TIMEOUT"),
        ({"AUTH_REALM": 'a"b'}, "AUTH_REALM"),
        ({"AUTH_SKIP_ISSUER_CHECK": "maybe"}, "AUTH_SKIP_ISSUER_CHECK"),
        ({"AUTH_API_SERVER_NAME": "10.96.0.1"}, "AUTH_API_SERVER_NAME"),
        ({"AUTH_API_SERVER_NAME": "https://kubernetes.default.svc"}, "AUTH_API_SERVER_NAME"),
        ({"AUTH_API_SERVER_NAME": "-bad-.svc"}, "AUTH_API_SERVER_NAME"),
        ({"KUBERNETES_SERVICE_IP": "kubernetes.default.svc"}, "KUBERNETES_SERVICE_IP"),
        ({"AUTH_REQUIRE_POD_BOUND": "pods"}, "AUTH_REQUIRE_POD_BOUND"),
        ({"AUTH_MAX_TOKEN_LIFETIME": "60"}, "AUTH_MAX_TOKEN_LIFETIME"),
        ({"AUTH_MAX_TOKEN_LIFETIME": "-1"}, "AUTH_MAX_TOKEN_LIFETIME"),
        ({"AUTH_STALE_TOKENS": "ignore"}, "AUTH_STALE_TOKENS"),
    ],
)
def test_invalid_values_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        AuthSettings.from_env({"AUTH_AUDIENCE": "reports", **environ})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AUTH_LOG_FORMAT": "xml"}, "AUTH_LOG_FORMAT='xml' must be one of logfmt, json"),
        ({"AUTH_LOG_LEVEL": "LOUD"}, "AUTH_LOG_LEVEL='LOUD' must be DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_the_example_services_settings_name_the_variable(
        environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        ServiceSettings.from_env(environ)


def test_the_example_services_settings_are_parsed() -> None:
    assert ServiceSettings.from_env({}) == ServiceSettings("logfmt", "INFO")
    parsed = ServiceSettings.from_env({"AUTH_LOG_LEVEL": "warn", "AUTH_LOG_FORMAT": "JSON"})
    assert parsed == ServiceSettings("json", "WARNING")


def test_unknown_auth_variables_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings_from({"AUTH_AUDIENSE": "typo", "HOME": "/root"})
    assert any(getattr(r, "variable", "") == "AUTH_AUDIENSE" for r in caplog.records)
    assert not any(getattr(r, "variable", "") == "HOME" for r in caplog.records)


def test_the_library_does_not_read_the_example_services_settings(
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 19, finding 5: a setting the library does not apply is not parsed by it; in a
    library application it is named as unknown instead of being silently accepted."""
    library = {variable.name for variable in VARIABLES}
    assert not library & {variable.name for variable in SERVICE_VARIABLES}
    assert not {"log_format", "log_level"} & set(AuthSettings.__dataclass_fields__)
    with caplog.at_level(logging.WARNING):
        settings_from({"AUTH_LOG_LEVEL": "LOUD", "AUTH_LOG_FORMAT": "xml"})
    named = {getattr(record, "variable", "") for record in caplog.records}
    assert {"AUTH_LOG_LEVEL", "AUTH_LOG_FORMAT"} <= named


def test_the_unknown_setting_line_names_the_variable_under_plain_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 19: ``logging.basicConfig()`` prints the message alone; it names the variable."""
    with caplog.at_level(logging.WARNING):
        AuthSettings.from_env({"AUTH_AUDIENCE": "reports", "AUTH_AUDIENSE": "typo"})
    [record] = [r for r in caplog.records if r.name == "compass_auth.settings"]
    assert logging.Formatter(logging.BASIC_FORMAT).format(record) == (
        "WARNING:compass_auth.settings:unknown setting ignored (a typo?): AUTH_AUDIENSE is not "
        "a compass-auth setting; did you mean AUTH_AUDIENCE? (docs/settings.md lists every "
        "setting)")


def test_describe_lists_every_field() -> None:
    described = settings_from({"AUTH_ALLOWED_SUBJECTS": "system:serviceaccount:a:b",
                               "AUTH_AUDIENCE": "reports"})
    assert described.describe()["allowed_subjects"] == "system:serviceaccount:a:b"
    assert described.describe()["audience"] == "reports"


def test_config_auth_env_documents_every_variable_with_its_default() -> None:
    """Both tables, with the example's audience for the one variable without a default."""
    text = (ROOT / "config" / "auth.env").read_text()
    assignments = dict(re.findall(r"^(AUTH_[A-Z_]+)=(.*)$", text, flags=re.MULTILINE))
    expected = {variable.name: variable.default for variable in VARIABLES + SERVICE_VARIABLES}
    assert expected.pop("AUTH_AUDIENCE") is None
    assert assignments == {**expected, "AUTH_AUDIENCE": EXAMPLE_AUDIENCE}


def test_docs_settings_lists_every_variable_in_its_table() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    library, _, example = page.partition("## The example service's variables")
    assert example, "docs/settings.md has no section for the example service's variables"
    for rows, text in ((VARIABLES, library), (SERVICE_VARIABLES, example)):
        missing = [variable.name for variable in rows if f"| `{variable.name}` |" not in text]
        assert not missing


def test_in_cluster_options_are_parsed() -> None:
    settings = AuthSettings.from_env({
        "AUTH_API_SERVER_NAME": "Kubernetes.Default.Svc.Cluster.Local.",
        "KUBERNETES_SERVICE_IP": " 10.96.0.1 ",
        "AUTH_REQUIRE_POD_BOUND": "true",
        "AUTH_MAX_TOKEN_LIFETIME": "86400",
        "AUTH_STALE_TOKENS": "Reject",
        "AUTH_AUDIENCE": "reports",
    })
    assert settings.api_server_name == "kubernetes.default.svc.cluster.local"
    assert settings.service_ip == "10.96.0.1"
    assert settings.require_pod_bound is True
    assert settings.max_token_lifetime == 86400
    assert settings.stale_tokens == "reject"
    assert settings_from({"KUBERNETES_SERVICE_IP": "fd00::1"}).service_ip == "fd00::1"


def test_skipping_the_issuer_check_is_a_loud_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert settings_from({}).insecure_skip_issuer_check is False
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert settings_from({"AUTH_SKIP_ISSUER_CHECK": "true"}).insecure_skip_issuer_check
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("INSECURE: issuer check disabled")


def test_settings_in_code_take_the_documented_defaults() -> None:
    """Issue 12: ``AuthSettings(audience=...)`` works, with the defaults of the table."""
    in_code = AuthSettings(audience="reports")
    from_env = AuthSettings.from_env({"AUTH_AUDIENCE": "reports"})
    assert in_code == from_env
    with pytest.raises(TypeError):
        AuthSettings()  # type: ignore[call-arg]  # a service names its own audience


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"audience": " "}, "AUTH_AUDIENCE"),
        ({"clock_skew": -1}, "AUTH_CLOCK_SKEW"),
        ({"max_token_bytes": 1.5}, "AUTH_MAX_TOKEN_BYTES"),
        ({"allowed_subjects": frozenset({"default:collector"})}, "AUTH_ALLOWED_SUBJECTS"),
        ({"issuers": ("http://insecure",)}, "AUTH_ISSUER"),
        ({"mode": "sometimes"}, "AUTH_MODE"),
        ({"max_token_lifetime": 60}, "AUTH_MAX_TOKEN_LIFETIME"),
        ({"api_server_name": "10.96.0.1"}, "AUTH_API_SERVER_NAME"),
        ({"service_ip": "kubernetes"}, "KUBERNETES_SERVICE_IP"),
    ],
)
def test_settings_in_code_are_validated_like_the_environment(
    overrides: dict[str, object], variable: str
) -> None:
    arguments: dict[str, object] = {"audience": "reports", **overrides}
    with pytest.raises(SettingsError, match=variable):
        AuthSettings(**arguments)  # type: ignore[arg-type]


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, "scripts/render_settings.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
