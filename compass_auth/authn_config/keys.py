"""The rules for ``extra`` keys: ``IsDomainPrefixedPath`` of k8s.io/apimachinery
(``pkg/util/validation/validation.go``), lowercase, and not a Kubernetes domain (reserved since
1.33: ``isKubernetesDomainPrefix`` in the apiserver validation)."""

from __future__ import annotations

import re

from .errors import FieldError

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + r")*"
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_DNS1123_SUBDOMAIN_FMT}')")
_HTTP_PATH_FMT = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_HTTP_PATH = re.compile(_HTTP_PATH_FMT)
_RESERVED_DOMAINS = ("kubernetes.io", "k8s.io")


def domain_prefixed_path_errors(key: str, path: str) -> list[FieldError]:
    if not key:
        return [FieldError(path, "Required")]
    host, slash, rest = key.partition("/")
    if not slash or not host or not rest:
        return [FieldError(path, "Invalid",
                           'must be a domain-prefixed path (such as "acme.io/foo")', key)]
    errors = []
    if len(host) > 253:
        errors.append(FieldError(path, "Invalid", "must be no more than 253 characters", host))
    if not _DNS1123_SUBDOMAIN.fullmatch(host):
        errors.append(FieldError(path, "Invalid", _DNS1123_SUBDOMAIN_ERROR, host))
    if not _HTTP_PATH.fullmatch(rest):
        errors.append(FieldError(
            path, "Invalid", f"Invalid path (regex used for validation is '{_HTTP_PATH_FMT}')",
            rest))
    return errors


def is_kubernetes_domain(key: str) -> bool:
    domain = key.partition("/")[0] if "/" in key else ""
    return any(domain == reserved or domain.endswith("." + reserved)
               for reserved in _RESERVED_DOMAINS)


def extra_key_errors(key: str, path: str) -> list[FieldError]:
    errors = domain_prefixed_path_errors(key, path)
    if key != key.lower():
        errors.append(FieldError(path, "Invalid", "key must be lowercase", key))
    if is_kubernetes_domain(key):
        errors.append(FieldError(
            path, "Invalid",
            "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use", key))
    return errors
