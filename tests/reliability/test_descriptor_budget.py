"""Issue 18, finding 3: file descriptors ran out, and the process then spun and flooded its log.

With ``ulimit -n 400`` and ``--max-connections 300``, 150 WebSockets plus 240 idle connections
hit ``EMFILE`` (WebSockets left the connection count); new clients got no answer, the process
used 100 % CPU and wrote 200,694 ERROR lines in 20 s. Now every client connection counts against
one budget that is checked against ``RLIMIT_NOFILE`` at start-up (``service/fd_budget.py``), and
accepting pauses on ``EMFILE`` (``service/accept.py``). All against ``python -m service serve``
started with a low limit; the flood is the finding's, scaled down.
"""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

from compass_auth.apiserver.connection import SPARE_CONNECTIONS
from compass_auth.testing import DevCluster
from service.fd_budget import PROCESS_FDS, TRANSIENT_FDS

from .limited import (
    LimitedService,
    answer_or_close,
    connect_from,
    open_websocket,
    running,
    start,
    wait_ready,
)

#: Descriptors the process needs besides client connections, with the default
#: AUTH_TOKENREVIEW_MAX_IN_FLIGHT (8) and one listening socket.
RESERVED = 1 + 8 + SPARE_CONNECTIONS + PROCESS_FDS + TRANSIENT_FDS
#: Seconds the flood is held while CPU time and log bytes are measured.
HOLD = 4.0
#: CPU seconds the process may use while the flood is held (a spin uses about HOLD).
CPU_ALLOWED = 0.5
#: Log lines the whole flood may add (the finding: ~10,000 a second).
LINES_ALLOWED = 10

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def idle_connections(port: int, address: str, count: int) -> list[Connection]:
    """``count`` connections from ``address`` that never send a byte."""
    opened = await asyncio.gather(*(connect_from(address, port) for _ in range(count)),
                                  return_exceptions=True)
    return [connection for connection in opened if not isinstance(connection, BaseException)]


def held(connections: list[Connection]) -> int:
    """How many the service has not closed (a refused one is closed at once)."""
    return sum(1 for reader, _ in connections if not reader.at_eof())


def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


async def new_clients_get_an_answer_or_a_clean_refusal(service: LimitedService) -> list[bytes]:
    outcomes = [await answer_or_close(service.port, timeout=5) for _ in range(5)]
    assert None not in outcomes, outcomes  # nothing, until the client gave up: the finding
    assert all(outcome in (b"", b"HTTP/1.1 200 OK") for outcome in outcomes), outcomes
    return [outcome for outcome in outcomes if outcome is not None]


async def test_websockets_and_idle_connections_share_one_budget_that_fits(
    devcluster: DevCluster, tmp_path: Path,
) -> None:
    """The finding's flood at a limit of 200: 80 WebSockets and 120 idle connections against a
    budget of 140 (which fits: 140 + the reserve <= 200). Each flooding address may hold 70
    (half of the budget), so three addresses are used, as three pods would."""
    budget = 140
    assert budget + RESERVED <= 200
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    token = devcluster.mint(audiences=("compass-internal",))
    with running(kubeconfig, tmp_path / "log", (200, 200),
                 "--max-connections", str(budget)) as service:
        await wait_ready(service.port)
        log_before = service.log_size()
        sockets = [ws for ws in await asyncio.gather(*(
            open_websocket(service.port, token, "127.0.0.2") for _ in range(80)))
            if ws is not None]
        idle = (await idle_connections(service.port, "127.0.0.3", 60)
                + await idle_connections(service.port, "127.0.0.4", 60))
        await asyncio.sleep(0.5)  # refusals are closes: let them arrive
        cpu_before = service.cpu_seconds()
        outcomes = await new_clients_get_an_answer_or_a_clean_refusal(service)
        await asyncio.sleep(HOLD)
        cpu = service.cpu_seconds() - cpu_before
        fds = service.open_fds()
        websockets, idle_held = held(sockets), held(idle)
        log_bytes = service.log_size()[0] - log_before[0]
        log_lines = service.log_size()[1] - log_before[1]
        print(f"\nbudget {budget}: {websockets} WebSockets + {idle_held} idle held, "
              f"probes {outcomes}; CPU {cpu:.2f}s in {HOLD}s; fds {fds}; "
              f"log +{log_bytes} bytes, +{log_lines} lines")
        assert websockets == 70  # its address's share: WebSockets count within the budget
        assert websockets + idle_held == budget
        assert fds <= budget + RESERVED
        assert cpu <= CPU_ALLOWED, cpu
        assert log_lines <= LINES_ALLOWED, service.log_text()[-3000:]
        log = service.log_text()
        assert log.count("connection limit reached") == 1
        assert "accepting paused" not in log  # the budget kept it off the limit
        close_all(sockets + idle)
        # After the flood a normal caller is served.
        for _ in range(50):
            answer = await answer_or_close(service.port, "/whoami", token=token)
            if answer == b"HTTP/1.1 200 OK":
                break
            await asyncio.sleep(0.1)
        assert answer == b"HTTP/1.1 200 OK"


async def test_out_of_descriptors_accepting_pauses_without_a_spin(
    devcluster: DevCluster, tmp_path: Path,
) -> None:
    """Descriptors taken by something other than client connections (here: the limit lowered
    under the running process) still end in EMFILE. Accepting pauses: little CPU, one log line,
    the waiting client answered once descriptors are free again."""
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    token = devcluster.mint(audiences=("compass-internal",))
    with running(kubeconfig, tmp_path / "log", (400, 400),
                 "--max-connections", "300") as service:
        await wait_ready(service.port)
        resource.prlimit(service.pid, resource.RLIMIT_NOFILE, (service.open_fds() + 20, 400))
        log_before = service.log_size()
        idle = await idle_connections(service.port, "127.0.0.2", 60)
        await asyncio.sleep(0.5)
        cpu_before = service.cpu_seconds()
        probe = asyncio.create_task(answer_or_close(service.port, timeout=HOLD + 10))
        await asyncio.sleep(HOLD)
        cpu = service.cpu_seconds() - cpu_before
        assert not probe.done()  # waiting in the listen backlog
        log_lines = service.log_size()[1] - log_before[1]
        log = service.log_text()
        print(f"\nEMFILE: {service.open_fds()} fds; CPU {cpu:.2f}s in {HOLD}s; "
              f"log +{service.log_size()[0] - log_before[0]} bytes, +{log_lines} lines")
        assert cpu <= CPU_ALLOWED, cpu
        assert log_lines <= LINES_ALLOWED, log[-3000:]
        assert log.count("out of file descriptors; accepting paused") == 1
        assert "error=EMFILE" in log
        # Descriptors come back: the paused accept resumes and the waiting client is answered.
        close_all(idle)
        assert await probe == b"HTTP/1.1 200 OK"
        resource.prlimit(service.pid, resource.RLIMIT_NOFILE, (400, 400))
        assert await answer_or_close(service.port, "/whoami", token=token) == b"HTTP/1.1 200 OK"


def test_a_budget_over_the_limit_refuses_to_start_with_a_sentence(
    devcluster: DevCluster, tmp_path: Path,
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    service = start(kubeconfig, tmp_path / "log", (200, 200), "--max-connections", "300")
    try:
        assert service.process.wait(timeout=30) == 2
    finally:
        if service.process.poll() is None:  # it started anyway
            service.process.kill()
            service.process.wait()
    log = service.log_text()
    assert "msg=listening" not in log
    assert (f"--max-connections 300 needs {300 + RESERVED} file descriptors: 300 for client "
            "connections (WebSockets count within them") in log
    assert "the file descriptor limit (RLIMIT_NOFILE, hard) is 200" in log
    assert (f"lower --max-connections to at most {200 - RESERVED}, or raise the limit to at "
            f"least {300 + RESERVED}") in log


async def test_a_soft_limit_under_the_budget_is_raised_when_the_hard_limit_allows(
    devcluster: DevCluster, tmp_path: Path,
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    with running(kubeconfig, tmp_path / "log", (200, 1000), "--max-connections", "300",
                 "--max-connections-per-address", "9", "--max-websockets", "7") as service:
        assert service.soft_nofile() == 300 + RESERVED
        log = service.log_text()
        assert "file descriptor limit raised to the connection budget" in log
        assert (f"max_connections_per_address=9 max_websockets=7 "
                f"descriptors_needed={300 + RESERVED} descriptor_limit={300 + RESERVED}") in log
        await wait_ready(service.port)
