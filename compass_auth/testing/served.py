"""What ``DevCluster`` and ``OidcIssuer`` share: a Tornado app served over TLS from the emulator's
own CA on a loopback port, the CA file, pause/resume and certificate switches, the clock, the
signing key ring and the request log. Each emulator keeps its own state; only the plumbing is
written once here."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

import tornado.web

from compass_auth.testing.clock import EmulatorClock
from compass_auth.testing.credentials import jws
from compass_auth.testing.credentials.ca import CertificateAuthority, Issued
from compass_auth.testing.credentials.keys import KeyRing
from compass_auth.testing.server.faults import FaultBoard
from compass_auth.testing.server.requestlog import RequestLog, RequestRecord
from compass_auth.testing.server.thread import ServerThread, server_ssl_context


class EmulatorState(Protocol):
    """The parts of ``ClusterState`` and ``IssuerState`` the shared plumbing uses."""

    keys: KeyRing
    faults: FaultBoard
    requests: RequestLog
    clock: EmulatorClock

    def reset(self) -> None: ...


StateT = TypeVar("StateT", bound=EmulatorState)


class ServedEmulator(Generic[StateT]):
    """Base of ``ClusterCore`` and ``OidcIssuer``; a subclass sets ``_state`` and then calls
    :meth:`_serve` in its ``__init__``, and calls :meth:`_start_serving` from ``start``."""

    _state: StateT
    #: Names the emulator in errors ("DevCluster not started").
    _kind = "emulator"

    def _serve(
        self,
        ca: CertificateAuthority,
        app: tornado.web.Application,
        server_cert_names: Sequence[str],
        host: str,
        port: int,
        name: str,
    ) -> None:
        self._ca = ca
        self._cert_names = tuple(server_cert_names)
        self._default_context = self._context(self._ca.issue_server(self._cert_names))
        self._context_changed = False
        self._host = host
        self._server = ServerThread(app, self._default_context, host, port, name=name)
        self._workdir: Path | None = None
        self._paused = False

    # ---- lifecycle -------------------------------------------------------
    def _start_serving(self, workdir_prefix: str) -> None:
        """Write the CA file and start serving; the CA file is removed again if that fails."""
        self._workdir = Path(tempfile.mkdtemp(prefix=workdir_prefix))
        self.ca_path.write_bytes(self.ca_pem)
        try:
            self._server.start()
        except BaseException:
            self._remove_workdir()
            raise

    def stop(self) -> None:
        """Stop serving and remove the CA file."""
        self._server.stop()
        self._remove_workdir()

    def _remove_workdir(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def start(self) -> Self:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- addresses -------------------------------------------------------
    @property
    def port(self) -> int:
        """The listening port (chosen at start when 0 was asked)."""
        return self._server.port

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``, the served origin (IPv6 hosts bracketed)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"https://{host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """PEM of this emulator's own CA, which signs its serving (and client) certificates."""
        return self._ca.cert_pem

    @property
    def ca_path(self) -> Path:
        """A file holding :attr:`ca_pem`, present between start and stop."""
        if self._workdir is None:
            raise RuntimeError(f"{self._kind} not started")
        return self._workdir / "ca.crt"

    # ---- clock -----------------------------------------------------------
    @property
    def clock_offset(self) -> float:
        """Seconds this emulator's clock runs ahead of the host's (see :meth:`advance_clock`)."""
        return self._state.clock.offset

    # ---- keys ------------------------------------------------------------
    @property
    def signing_key_id(self) -> str:
        """``kid`` of the key new tokens are signed with."""
        return self._state.keys.current.kid

    def add_key(self, key_type: Literal["RSA", "EC"] = "RSA", make_current: bool = False) -> str:
        """Publish a new key at once (and optionally sign with it); returns its kid."""
        return self._state.keys.add(key_type, make_current=make_current)

    def rotate_key(self, key_type: Literal["RSA", "EC"] = "RSA") -> str:
        """``add_key(make_current=True)``: the old key stays published until :meth:`remove_key`."""
        return self.add_key(key_type, make_current=True)

    def jwks(self) -> dict[str, Any]:
        """The key set document this emulator serves."""
        return {"keys": [jws.jwk(key.public_key, key.kid)
                         for key in self._state.keys.published()]}

    # ---- faults and switches ---------------------------------------------
    def clear_faults(self) -> None:
        """Remove all faults."""
        self._state.faults.clear()

    def pause(self) -> None:
        """Stop listening (connection refused: the server is down) until :meth:`resume`."""
        self._server.pause()
        self._paused = True

    def resume(self) -> None:
        """Listen again on the same port."""
        self._server.resume()
        self._paused = False

    def set_server_certificate(
        self,
        names: Sequence[str] | None = None,
        expired: bool = False,
        self_signed: bool = False,
    ) -> None:
        """Serve another certificate to new connections.

        For TLS-failure tests: wrong ``names``, ``expired``, or ``self_signed``
        (not from the CA). :meth:`reset` restores the original one.
        """
        names = tuple(names) if names is not None else self._cert_names
        issued = self._ca.issue_server(names, expired=expired, self_signed=self_signed)
        self._server.set_context(self._context(issued))
        self._context_changed = True

    # ---- observation -------------------------------------------------------
    @property
    def requests(self) -> RequestLog:
        """The thread-safe request log (this emulator's only)."""
        return self._state.requests

    def request_count(self, endpoint: str) -> int:
        """Requests that reached ``endpoint`` since the last reset (dropped ones too)."""
        return self._state.requests.count(endpoint)

    @property
    def request_log(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        return self._state.requests.records()

    def reset(self) -> None:
        """Faults, the request log, the clock's offset, the certificate and a pause undone
        (the state's own ``reset`` says what else); keys are kept."""
        self._state.reset()
        if self._context_changed:
            self._server.set_context(self._default_context)
            self._context_changed = False
        if self._paused:
            self.resume()

    def _context(self, issued: Issued) -> ssl.SSLContext:
        return server_ssl_context(issued.cert_pem, issued.key_pem, self._ca.cert_pem)
