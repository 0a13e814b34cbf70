"""A PgBouncer of the test run's own, in front of the test server.

With ``SQLSPEC_TEST_POOLER`` set to ``transaction`` or ``session``, the ``server_dsn``
fixture hands every test a conninfo through :class:`PgBouncer` in that pool mode
instead of the server's own. Debian's ``pgbouncer`` is installed where missing (as
root, with ``apt-get``). PgBouncer refuses to run as root, so it runs as the user
that can reach the server: the owner of the server's unix socket directory, or
``postgres`` (``nobody`` where there is none) for a TCP server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from proxy import free_port, upstream_of

__all__ = ["POOLER_ENV", "POOL_MODES", "PgBouncer", "pooler_mode"]

#: The environment variable naming the pool mode the suites run through, if any.
POOLER_ENV = "SQLSPEC_TEST_POOLER"
POOL_MODES = ("transaction", "session")
#: Server connections per database and user: enough for the most writers a test has
#: waiting on one row lock at once (20, plus the lock's holder), each visibly on a
#: server connection. Transaction mode still hands one server connection to many
#: clients in turn, as their transactions end.
POOL_SIZE = 30
#: Seconds a client's query waits for a server connection before PgBouncer fails it
#: (PgBouncer's default, 120, outlasts every bound of the fault suite).
QUERY_WAIT_TIMEOUT = 5
_LOOPBACK = "127.0.0.1"


def pooler_mode() -> str | None:
    """The pool mode named by ``SQLSPEC_TEST_POOLER``, or ``None`` for the server itself."""
    mode = os.environ.get(POOLER_ENV, "").strip().lower()
    if not mode:
        return None
    if mode not in POOL_MODES:
        raise ValueError(f"{POOLER_ENV} must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    return mode


def pgbouncer_binary() -> str:
    """Where ``pgbouncer`` is, installing Debian's package first if it is missing."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("pgbouncer is not installed; install it with: apt-get install pgbouncer")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "pgbouncer"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if not found:
        raise RuntimeError("apt-get installed pgbouncer, yet no pgbouncer binary is found")
    return found


def _run_as(upstream: str | tuple[str, int]) -> pwd.struct_passwd | None:
    """The non-root user PgBouncer runs as (``None``: the current, non-root, user)."""
    if os.geteuid() != 0:
        return None
    if isinstance(upstream, str):
        owner = pwd.getpwuid(Path(upstream).parent.stat().st_uid)
        if owner.pw_uid != 0:
            return owner
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no non-root user to run pgbouncer as")


class PgBouncer:
    """PgBouncer in ``pool_mode``, on a free loopback port, in front of ``server_conninfo``.

    It opens at most ``pool_size`` server connections per database. Every database
    of the server is reachable through it under its own name; the user of
    ``server_conninfo`` logs in without a password (the test servers trust local
    connections) and may use the admin console (:meth:`admin`).
    """

    def __init__(self, server_conninfo: str, pool_mode: str, pool_size: int = POOL_SIZE) -> None:
        params = conninfo_to_dict(server_conninfo)
        self.user = str(params.get("user") or pwd.getpwuid(os.geteuid()).pw_name)
        self.pool_mode = pool_mode
        self.port = free_port()
        upstream = upstream_of(server_conninfo)
        user = _run_as(upstream)
        self.dir = Path(tempfile.mkdtemp(prefix="sqlspec-pgbouncer-")).resolve()
        if isinstance(upstream, str):
            host, port = str(Path(upstream).parent), upstream.rsplit(".", 1)[1]
        else:
            host, port = upstream[0], str(upstream[1])
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        self.config = self.dir / "pgbouncer.ini"
        self.config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={host} port={port}",
                    "[pgbouncer]",
                    f"listen_addr = {_LOOPBACK}",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.dir / 'users.txt'}",
                    f"admin_users = {self.user}",
                    f"pool_mode = {pool_mode}",
                    f"default_pool_size = {pool_size}",
                    "max_client_conn = 1000",
                    "server_idle_timeout = 10",
                    # A down server is reported within seconds, and found back within one.
                    f"query_wait_timeout = {QUERY_WAIT_TIMEOUT}",
                    "server_login_retry = 1",
                    "ignore_startup_parameters = extra_float_digits",
                    f"logfile = {self.dir / 'pgbouncer.log'}",
                    f"pidfile = {self.dir / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        if user is not None:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            for path in self.dir.iterdir():
                os.chown(path, user.pw_uid, user.pw_gid)
        self._process = subprocess.Popen(
            [pgbouncer_binary(), str(self.config)],
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=os.getgrouplist(user.pw_name, user.pw_gid) if user else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def conninfo(self, base: str) -> str:
        """``base`` (a conninfo of the server) routed through this PgBouncer."""
        params = {
            k: v
            for k, v in conninfo_to_dict(base).items()
            if k not in ("host", "hostaddr", "port", "password")
        }
        params.update(host=_LOOPBACK, port=str(self.port), user=self.user)
        return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})

    def admin(self, command: str) -> list[dict[str, object]]:
        """Run an admin-console command (``SHOW CLIENTS``, ...) and return its rows."""
        admin = make_conninfo(
            "", host=_LOOPBACK, port=str(self.port), user=self.user, dbname="pgbouncer"
        )
        with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
            cur = conn.execute(command)
            if cur.description is None:  # a command (KILL, PAUSE, ...): no rows
                return []
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def clients(self, prefix: str) -> int:
        """How many client connections whose application_name starts with ``prefix`` it holds."""
        return sum(
            1
            for client in self.admin("SHOW CLIENTS")
            if str(client.get("application_name") or "").startswith(prefix)
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log()}")
            try:
                self.admin("SHOW VERSION")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def log(self) -> str:
        """PgBouncer's log so far."""
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop PgBouncer (closing its connections) and delete its directory."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
