"""Reading an AuthenticationConfiguration file: bytes -> document -> values -> validated and
compiled. The only I/O of this package is ``load_authentication_config`` reading the one file.

YAML or JSON (JSON is YAML). As kube-apiserver's strict decoding does, a key given twice is an
error, not "the last one wins"; so is more than one YAML document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .decode import decode_configuration
from .errors import AuthenticationConfigError, FieldError, IssuerUnknown
from .model import AuthenticationConfiguration
from .validation import CompiledAuthenticator, validate_configuration

#: Far above any real configuration (64 authenticators with CA bundles fit in a few hundred KiB);
#: a larger file is a mistake, not something to parse.
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AuthenticationConfig:
    """A validated configuration, its expressions compiled, ready for ``user_from_claims``."""

    source: str
    spec: AuthenticationConfiguration
    authenticators: tuple[CompiledAuthenticator, ...]

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(entry.spec.issuer.url for entry in self.authenticators)

    def authenticator_for(self, issuer: str) -> CompiledAuthenticator:
        """The authenticator whose ``issuer.url`` equals ``issuer`` exactly (upstream compares
        the token's ``iss`` the same way); raises ``IssuerUnknown``."""
        for entry in self.authenticators:
            if entry.spec.issuer.url == issuer:
                return entry
        raise IssuerUnknown(f"no jwt authenticator in {self.source} has issuer {issuer!r}")


def _duplicate_key(node: Any) -> Any:
    """The first mapping key node given twice in a composed YAML tree, or None."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.id == "mapping":
            seen = set()
            for key, value in current.value:
                if key.id == "scalar" and key.value in seen:
                    return key
                seen.add(key.value if key.id == "scalar" else id(key))
                stack.append(value)
        elif current.id == "sequence":
            stack.extend(current.value)
    return None


def _parse_document(text: str, source: str) -> Any:
    # Imported here: only a service with a configuration file pays for it. PyYAML has no type
    # information (as in compass_auth/testing/files.py).
    import yaml  # type: ignore[import-untyped]

    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        for node in nodes:
            duplicate = _duplicate_key(node)
            if duplicate is not None:
                mark = duplicate.start_mark
                raise AuthenticationConfigError(source, [FieldError(
                    "<file>", "Invalid", f"duplicate field {duplicate.value!r} at line "
                    f"{mark.line + 1}, column {mark.column + 1}")])
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise AuthenticationConfigError(
            source, [FieldError("<file>", "Invalid", f"not YAML or JSON: {error}")]) from None
    if len(documents) != 1:
        raise AuthenticationConfigError(
            source, [FieldError("<file>", "Invalid",
                                f"must hold one document, not {len(documents)}")])
    return documents[0]


def parse_authentication_config(text: str | bytes, source: str = "<text>",
                                disallowed_issuers: Iterable[str] = ()) -> AuthenticationConfig:
    """Decode, validate and compile a configuration; raises ``AuthenticationConfigError``
    naming ``source``, every field path and the rule. ``disallowed_issuers``: issuers no entry
    may name, the cluster's own service-account issuer above all."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationConfigError(
                source, [FieldError("<file>", "Invalid", "not UTF-8 text")]) from None
    spec, errors = decode_configuration(_parse_document(text, source))
    if errors:
        raise AuthenticationConfigError(source, errors)
    authenticators, errors = validate_configuration(spec, disallowed_issuers)
    if errors:
        raise AuthenticationConfigError(source, errors)
    return AuthenticationConfig(source, spec, authenticators)


def load_authentication_config(path: str | Path,
                               disallowed_issuers: Iterable[str] = ()) -> AuthenticationConfig:
    """``parse_authentication_config`` of the file at ``path``."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise AuthenticationConfigError(
            source, [FieldError("<file>", "Invalid", f"cannot be read: {error.strerror}")]
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise AuthenticationConfigError(
            source, [FieldError("<file>", "Invalid", f"is larger than {MAX_FILE_BYTES} bytes")])
    return parse_authentication_config(data, source, disallowed_issuers)
