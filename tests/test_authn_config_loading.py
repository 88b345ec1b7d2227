"""Reading an AuthenticationConfiguration file: strict decoding, one error naming the file, the
field path and the rule, the ``cel`` extra, and rules of ours beyond the upstream tables."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compass_auth.authn_config import (
    INSTALL_HINT,
    AuthenticationConfigError,
    ClaimRejected,
    load_authentication_config,
    parse_authentication_config,
    user_from_claims,
)
from compass_auth.settings import SettingsError

GOOD = textwrap.dedent("""\
    apiVersion: apiserver.config.k8s.io/v1
    kind: AuthenticationConfiguration
    jwt:
    - issuer:
        url: https://ci.example.com
        audiences: [reports]
      claimValidationRules:
      - expression: "claims.sub.startsWith('ci:')"
        message: only CI jobs
      claimMappings:
        username: {claim: sub, prefix: "ci:"}
        groups: {claim: groups, prefix: ""}
    """)


def write(tmp_path: Path, text: str, name: str = "authn.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_maps_claims(tmp_path: Path) -> None:
    config = load_authentication_config(write(tmp_path, GOOD))
    entry = config.authenticator_for("https://ci.example.com")
    user = user_from_claims({"sub": "ci:job-1", "groups": ["builders"]}, entry)
    assert (user.username, user.groups) == ("ci:ci:job-1", ("builders",))
    with pytest.raises(ClaimRejected, match="only CI jobs"):
        user_from_claims({"sub": "human"}, entry)


def test_v1beta1_has_the_same_fields(tmp_path: Path) -> None:
    text = GOOD.replace("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1")
    assert load_authentication_config(write(tmp_path, text)).issuers == ("https://ci.example.com",)


def test_json_is_read_too(tmp_path: Path) -> None:
    text = ('{"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration",'
            ' "jwt": [{"issuer": {"url": "https://a.example", "audiences": ["x"]},'
            ' "claimMappings": {"username": {"expression": "claims.sub"}}}]}')
    assert load_authentication_config(write(tmp_path, text, "a.json")).issuers == (
        "https://a.example",)


@pytest.mark.parametrize(("text", "path_and_rule"), [
    (GOOD.replace("claimValidationRules", "claimValidationRule"),
     "jwt[0].claimValidationRule: Unknown field"),
    (GOOD.replace("  claimMappings:\n", "  claimMappings:\n    usernme: {claim: x}\n"),
     "jwt[0].claimMappings.usernme: Unknown field"),
    (GOOD.replace("audiences: [reports]", "audiences: [reports]\n    audiences: [other]"),
     "duplicate field 'audiences'"),
    (GOOD.replace("/v1", "/v1alpha1"), 'apiVersion: Unsupported value: '
                                       '"apiserver.config.k8s.io/v1alpha1"'),
    (GOOD.replace("url: https://ci.example.com", "url: 42"),
     "jwt[0].issuer.url: Invalid value: 42: must be a string"),
    (GOOD + "anonymous: {enabled: true}\n", "anonymous: Forbidden"),
    (GOOD.replace("audiences: [reports]", "audiences: [reports]\n    egressSelectorType: cluster"),
     "jwt[0].issuer.egressSelectorType: Forbidden"),
    (GOOD + "---\n" + GOOD, "must hold one document, not 2"),
    (GOOD.replace('prefix: "ci:"}', 'prefix: "ci:"}\n    extra: [{key: kubernetes.io/x, '
                                    "valueExpression: claims.sub}]"),
     'jwt[0].claimMappings.extra[0].key: Invalid value: "kubernetes.io/x": k8s.io, '
     "kubernetes.io and their subdomains are reserved for Kubernetes use"),
])
def test_a_bad_file_is_one_error_naming_file_path_and_rule(tmp_path: Path, text: str,
                                                           path_and_rule: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AuthenticationConfigError) as raised:
        load_authentication_config(path)
    assert isinstance(raised.value, SettingsError)  # a service refuses to start with it
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid AuthenticationConfiguration")
    assert path_and_rule in message


def test_the_clusters_own_issuer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationConfigError, match=(
            r'jwt\[0\]\.issuer\.url: Invalid value: "https://ci\.example\.com": URL must not '
            r"overlap with disallowed issuers")):
        load_authentication_config(write(tmp_path, GOOD),
                                   disallowed_issuers=["https://ci.example.com"])


def test_every_error_is_listed(tmp_path: Path) -> None:
    text = GOOD.replace("https://ci", "http://ci").replace("audiences: [reports]",
                                                           "audiences: [a, b]")
    with pytest.raises(AuthenticationConfigError) as raised:
        load_authentication_config(write(tmp_path, text))
    assert [error.path for error in raised.value.errors] == [
        "jwt[0].issuer.url", "jwt[0].issuer.audienceMatchPolicy"]


def test_an_unreadable_or_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationConfigError, match="cannot be read"):
        load_authentication_config(tmp_path / "missing.yaml")
    with pytest.raises(AuthenticationConfigError, match="larger than"):
        load_authentication_config(write(tmp_path, "#" * (1024 * 1024 + 1)))


def test_a_huge_integer_claim_reaches_cel_as_a_double() -> None:
    """JSON numbers beyond 64 bits: cel-cpp refuses Python ints that large; Kubernetes'
    unstructured decoding makes them doubles, and so do we."""
    config = parse_authentication_config(GOOD.replace(
        "expression: \"claims.sub.startsWith('ci:')\"", "expression: \"claims.n > 1.0\""))
    entry = config.authenticators[0]
    assert user_from_claims({"sub": "x", "n": 2**70}, entry).username == "ci:x"


def test_expressions_without_the_cel_extra_name_the_extra(tmp_path: Path) -> None:
    """In a fresh interpreter where cel_expr_python cannot be imported (as in a bare install),
    a file with expressions fails at load with a sentence naming the extra; a file without
    expressions still loads."""
    path = write(tmp_path, GOOD)
    plain = write(tmp_path, GOOD.replace(
        "  claimValidationRules:\n  - expression: \"claims.sub.startsWith('ci:')\"\n"
        "    message: only CI jobs\n", ""), "plain.yaml")
    script = textwrap.dedent(f"""\
        import sys
        sys.modules["cel_expr_python"] = None  # what a bare install looks like to import
        from compass_auth.authn_config import load_authentication_config
        print(load_authentication_config({str(plain)!r}).issuers)
        try:
            load_authentication_config({str(path)!r})
        except Exception as error:
            print(type(error).__name__, error)
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert "('https://ci.example.com',)" in result.stdout
    assert "AuthenticationConfigError" in result.stdout
    assert "jwt[0].claimValidationRules[0].expression: Invalid value" in result.stdout
    assert INSTALL_HINT in result.stdout
