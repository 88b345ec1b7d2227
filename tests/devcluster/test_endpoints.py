"""The endpoint table (compass_auth/testing/server/endpoints.py) is what the emulator serves and
what its README lists: each row's paths reach its handler under its name over real HTTPS, faults
follow the name, and the README's "Endpoints" table is the table rendered (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compass_auth.testing import DevCluster, Fault
from compass_auth.testing.server.endpoints import ENDPOINTS, FAULT_ENDPOINTS, NOT_FOUND, Endpoint

from .kubehttp import call

README = Path(__file__).resolve().parents[2] / "compass_auth" / "testing" / "README.md"
#: What a path template's parts stand for in a request.
SAMPLES = {"namespace": "default", "name": "collector"}


def shown(pattern: str) -> str:
    """A Tornado pattern as the README shows it: ``{namespace}`` for a named group, no regex."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).removesuffix("/?").replace("\\.", ".")
    assert not re.search(r"[\\()\[\]?*+|^$]", path), f"{pattern!r}: no plain path shows it"
    return path


def readme_rows() -> list[str]:
    rows = ["| name | request | `set_fault` |", "| --- | --- | --- |"]
    for endpoint in (*ENDPOINTS, NOT_FOUND):
        requests = ", ".join(f"`{endpoint.method} {shown(path)}`" for path in endpoint.paths)
        faults = "yes" if endpoint.faults else '`"all"` only'
        rows.append(f"| `{endpoint.name}` | {requests or 'any other path'} | {faults} |")
    return rows


def test_the_readme_lists_every_endpoint() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Endpoints\n", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    expected = readme_rows()
    assert table == expected, (
        "compass_auth/testing/README.md's Endpoints table differs from server/endpoints.py; "
        "the table should read:\n" + "\n".join(expected))


@pytest.mark.parametrize(("endpoint", "path"),
                         [(endpoint, path) for endpoint in ENDPOINTS for path in endpoint.paths]
                         + [(NOT_FOUND, "/no/such/path")],
                         ids=lambda value: value.name if isinstance(value, Endpoint) else value)
def test_each_path_reaches_its_endpoint(devcluster: DevCluster, endpoint: Endpoint,
                                        path: str) -> None:
    sample = shown(path).format(**SAMPLES) if endpoint.paths else path
    assert re.fullmatch(path, sample)
    method = "GET" if endpoint.method == "any" else endpoint.method
    body = {} if method == "POST" else None

    answer = call(devcluster, sample, token=devcluster.admin_token, body=body, method=method)
    assert answer.status != 405, f"{endpoint.handler.__name__} does not serve {method}"
    assert [record.endpoint for record in devcluster.request_log] == [endpoint.name]

    # A fault set for the name reaches this path; a name that may not fault is refused.
    if endpoint.faults:
        devcluster.set_fault(endpoint.name, Fault(status=503, times=1))
        assert call(devcluster, sample, token=devcluster.admin_token, body=body,
                    method=method).status == 503
    else:
        with pytest.raises(ValueError, match="unknown endpoint"):
            devcluster.set_fault(endpoint.name, Fault(status=503))


def test_set_fault_takes_the_names_it_took_before_the_table() -> None:
    """The names were a hand-written list in faults.py; tests and users still pass these."""
    assert FAULT_ENDPOINTS == (
        "discovery", "jwks", "tokenreview", "selfsubjectreview", "tokenrequest",
        "subjectaccessreview", "rbac", "all")
