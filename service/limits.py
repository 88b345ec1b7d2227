"""The example service's HTTP limits (``python -m service serve`` flags set the connection limits
and the idle timeout)."""

from __future__ import annotations

#: Bytes of request line and headers per request. A bound token is ~1 KiB and
#: AUTH_MAX_TOKEN_BYTES defaults to 8 KiB; Tornado's default (64 KiB) would let each slow client
#: pin 8x more memory than needed. A larger head gets 431 (service/head_limit.py); a head under
#: it whose token is over AUTH_MAX_TOKEN_BYTES gets 401 ``too_large``.
MAX_HEADER_BYTES = 16 * 1024
#: After a 431, what the client still sends is read and dropped for at most this many seconds
#: and bytes before the connection is closed, so that the client gets the answer rather than a
#: reset (RFC 9112 §9.6). The connection keeps its place under MAX_CONNECTIONS meanwhile.
HEAD_REFUSAL_LINGER_SECONDS = 2.0
HEAD_REFUSAL_LINGER_BYTES = 1024 * 1024
#: The example has no request bodies worth more than this.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a connection may sit idle or take to send its headers (Tornado uses the same value
#: for both; a request body gets as long): bounds slowloris-style clients.
IDLE_TIMEOUT = 30.0
#: Client connections open at most, WebSockets included (each holds a descriptor until its
#: socket closes); beyond that new ones are closed at once. The process checks at start-up that
#: these plus its own descriptors fit under RLIMIT_NOFILE (service/fd_budget.py): beyond the
#: limit accept() fails with EMFILE (service/accept.py pauses then). Callers are in-cluster
#: services with small pools; 1000 idle connections cost ~10 MB (docs/reliability.md). 900 plus
#: the process's own descriptors (53 at the defaults) fit the common 1024 limit, so the defaults
#: start wherever that is the hard limit (a build container's, for one). One client address may
#: hold half of them (``--max-connections-per-address``), so one client reconnecting as fast as
#: it is cut cannot lock everyone else out.
MAX_CONNECTIONS = 900
#: WebSocket connections (``/ws/whoami``) open at most; beyond that the upgrade gets 503. They
#: count within MAX_CONNECTIONS, and half of it leaves room for plain requests and probes. An
#: upgraded connection leaves the HTTP server's idle timeout; pings (WEBSOCKET_PING_INTERVAL)
#: find peers that vanished, and the token's expiry ends every connection.
MAX_WEBSOCKETS = 450
#: Bytes of one WebSocket message at most (Tornado's default is 10 MiB); the example echoes.
MAX_WEBSOCKET_MESSAGE_BYTES = 64 * 1024
#: Seconds between pings on an idle WebSocket; an unanswered ping closes it after as long again.
WEBSOCKET_PING_INTERVAL = IDLE_TIMEOUT
