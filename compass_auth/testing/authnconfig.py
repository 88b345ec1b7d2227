"""``AuthenticationConfiguration`` files (``apiserver.config.k8s.io/v1``) for emulated issuers:
a ``jwt`` entry per ``OidcIssuer`` or ``DevCluster``, written as kube-apiserver reads them
(README.md beside this file, "Several issuers").

Written from the upstream types (``staging/src/k8s.io/apiserver/pkg/apis/apiserver/v1/types.go``)
and shares no code with ``compass_auth.authn_config``, which reads them: the kit's tests load
every file written here with the library's loader, so the two sides must agree.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "AuthenticationConfiguration"
#: Where upstream looks for the discovery document when the entry names no ``discoveryURL``:
#: ``strings.TrimSuffix(url, "/") + "/.well-known/openid-configuration"``
#: (``staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go``).
WELL_KNOWN = "/.well-known/openid-configuration"
#: The audience both emulators mint for by default.
DEFAULT_AUDIENCE = "compass-internal"

#: Lets anyone read a cluster's discovery document and JWKS: what an administrator applies
#: (the Kubernetes docs, "Service account issuer discovery") before another cluster may trust
#: this one through ``discoveryURL``, because upstream's JWT authenticator fetches both without
#: credentials and ``system:service-account-issuer-discovery`` is bound only to
#: ``system:serviceaccounts`` by default. ``DevCluster.load_rbac(ANONYMOUS_DISCOVERY_RBAC,
#: persistent=True)``; the ``second_cluster`` fixture does it.
ANONYMOUS_DISCOVERY_RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: service-account-issuer-discovery-unauthenticated
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:unauthenticated
"""


class TrustedIssuer(Protocol):
    """What an entry is written from: ``OidcIssuer`` and ``DevCluster`` both have these."""

    @property
    def issuer(self) -> str: ...

    @property
    def discovery_url(self) -> str: ...

    @property
    def ca_pem(self) -> bytes: ...


def default_claim_mappings(issuer: str, prefix: str | None = None) -> dict[str, Any]:
    """Username from ``sub``, groups from ``groups``, both prefixed with ``prefix``.

    The default prefix is ``issuer + "#"``, what kube-apiserver's ``--oidc-username-prefix``
    defaults to for claims other than ``email`` (``pkg/kubeapiserver/options/authentication.go``):
    a foreign issuer's ``sub`` or group can never equal a local name (``system:masters``, a
    local service account). A service-account token has no ``groups`` claim, so a cluster's
    tokens map to no groups unless ``claim_mappings`` says how (a CEL expression).
    """
    chosen = f"{issuer}#" if prefix is None else prefix
    return {"username": {"claim": "sub", "prefix": chosen},
            "groups": {"claim": "groups", "prefix": chosen}}


def jwt_authenticator(
    source: TrustedIssuer,
    *,
    audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    prefix: str | None = None,
    claim_validation_rules: Iterable[Mapping[str, Any]] = (),
    claim_mappings: Mapping[str, Any] | None = None,
    user_validation_rules: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One ``jwt`` entry for a started ``OidcIssuer`` or ``DevCluster``.

    ``issuer.url`` is its issuer; ``discoveryURL`` is added when the discovery document is not
    served under that URL (a ``DevCluster``, an ``OidcIssuer(issuer=...)``);
    ``certificateAuthority`` is its CA, inline. More than one audience gets
    ``audienceMatchPolicy: MatchAny`` (required upstream). ``claim_mappings`` replaces
    :func:`default_claim_mappings` whole; the rules are written as given (their upstream field
    names: ``claim``/``requiredValue``, ``expression``/``message``).
    """
    if isinstance(audiences, str):
        raise TypeError("audiences must be a sequence of strings, not a string")
    issuer: dict[str, Any] = {"url": source.issuer}
    if source.discovery_url != source.issuer.rstrip("/") + WELL_KNOWN:
        issuer["discoveryURL"] = source.discovery_url
    issuer["certificateAuthority"] = source.ca_pem.decode("ascii")
    issuer["audiences"] = list(audiences)
    if len(audiences) > 1:
        issuer["audienceMatchPolicy"] = "MatchAny"
    entry: dict[str, Any] = {"issuer": issuer}
    rules = [dict(rule) for rule in claim_validation_rules]
    if rules:
        entry["claimValidationRules"] = rules
    entry["claimMappings"] = (dict(claim_mappings) if claim_mappings is not None
                              else default_claim_mappings(source.issuer, prefix))
    user_rules = [dict(rule) for rule in user_validation_rules]
    if user_rules:
        entry["userValidationRules"] = user_rules
    return entry


def authentication_config(
    issuers: Iterable[TrustedIssuer | Mapping[str, Any]],
    *,
    api_version: str = API_VERSION,
    audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    prefix: str | None = None,
    claim_validation_rules: Iterable[Mapping[str, Any]] = (),
    claim_mappings: Mapping[str, Any] | None = None,
    user_validation_rules: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The whole document: one entry per issuer, in order. An issuer is an emulator (its entry
    built by :func:`jwt_authenticator` with the other arguments) or a ready entry (a mapping,
    e.g. another :func:`jwt_authenticator` result, used as is)."""
    claim_rules = [dict(rule) for rule in claim_validation_rules]
    user_rules = [dict(rule) for rule in user_validation_rules]
    entries = [
        dict(issuer) if isinstance(issuer, Mapping) else jwt_authenticator(
            issuer, audiences=audiences, prefix=prefix, claim_validation_rules=claim_rules,
            claim_mappings=claim_mappings, user_validation_rules=user_rules)
        for issuer in issuers
    ]
    return {"apiVersion": api_version, "kind": KIND, "jwt": entries}


def write_authentication_config(
    path: str | os.PathLike[str],
    issuers: Iterable[TrustedIssuer | Mapping[str, Any]],
    *,
    file_format: Literal["yaml", "json"] = "yaml",
    api_version: str = API_VERSION,
    audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    prefix: str | None = None,
    claim_validation_rules: Iterable[Mapping[str, Any]] = (),
    claim_mappings: Mapping[str, Any] | None = None,
    user_validation_rules: Iterable[Mapping[str, Any]] = (),
) -> Path:
    """Write :func:`authentication_config` to ``path`` and return it.

    The file is replaced atomically (a temporary file renamed over it), so a service polling it
    for changes never reads half a file: rewriting it is how a test reloads the configuration.
    """
    document = authentication_config(
        issuers, api_version=api_version, audiences=audiences, prefix=prefix,
        claim_validation_rules=claim_validation_rules, claim_mappings=claim_mappings,
        user_validation_rules=user_validation_rules)
    return write_document(path, document, file_format)


def write_document(path: str | os.PathLike[str], document: Mapping[str, Any],
                   file_format: Literal["yaml", "json"] = "yaml") -> Path:
    """Write any document (a hand-edited configuration, a broken one) atomically as YAML or
    JSON."""
    target = Path(path)
    if file_format == "json":
        text = json.dumps(document, indent=2) + "\n"
    elif file_format == "yaml":
        text = yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)
    else:
        raise ValueError(f"file_format must be 'yaml' or 'json', not {file_format!r}")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.info("authentication configuration written path=%s authenticators=%d", target,
                len(document.get("jwt") or ()))
    return target
