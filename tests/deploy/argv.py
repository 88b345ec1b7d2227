"""What ``python -m service ...`` makes of a container's command line, without running it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import service.__main__
import service.app
import service.caller

from .dockerfile import entrypoint
from .manifests import Object
from .tools import ROOT

MODULE_PREFIX = ["python", "-m", "service"]


def container_argv(container: Object) -> list[str]:
    """The process a container runs: its command (else the image's ENTRYPOINT) plus args."""
    command = container.get("command") or entrypoint(ROOT / "Dockerfile")
    return [*command, *container.get("args", [])]


def parse(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, Any]]:
    """Run ``service.__main__.main`` on ``argv`` with the subcommands replaced by recorders.

    Returns the subcommand and the arguments it would have been called with: the real argparse
    set-up decides, so a misspelt flag or a bad value fails here as it would in the pod.
    """
    assert argv[:3] == MODULE_PREFIX, f"{argv} does not run the service package"
    calls: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str, real: Any) -> Any:
        # Named after the real function's parameters, so a new option does not break this.
        signature = inspect.signature(real)

        def record(*args: Any, **kwargs: Any) -> int:
            calls.append((name, dict(signature.bind(*args, **kwargs).arguments)))
            return 0
        return record

    monkeypatch.setattr(service.app, "main", recorder("serve", service.app.main))
    monkeypatch.setattr(service.caller, "main", recorder("call", service.caller.main))
    assert service.__main__.main(argv[3:]) == 0
    assert len(calls) == 1
    return calls[0]
