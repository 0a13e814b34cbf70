"""The server and the scratch database a benchmark run works in."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["DSN_ENV", "resolve_server", "scratch_database", "sqlalchemy_url"]

DSN_ENV = "SQLSPEC_DSN"


def resolve_server(dsn: str | None) -> tuple[str, str]:
    """The server to use and where it came from: ``--dsn``, ``$SQLSPEC_DSN``, or embedded."""
    if dsn:
        return dsn, "--dsn"
    if os.environ.get(DSN_ENV):
        return os.environ[DSN_ENV], f"${DSN_ENV}"
    from sqlspec.adapters.psycopg._embedded import embedded_conninfo

    return embedded_conninfo(), "embedded server"


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """Create a database of this run's own on ``server``; drop it at the end, whatever happens."""
    name = f"sqlspec_bench_{os.getpid()}_{secrets.token_hex(3)}"
    database = sql.Identifier(name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))


def sqlalchemy_url(conninfo: str, driver: str) -> str:
    """``conninfo`` as a SQLAlchemy URL for ``postgresql+<driver>``.

    Both drivers read libpq's ``host``/``port`` from the query string too, which
    covers a Unix socket directory (the embedded server's).
    """
    from sqlalchemy.engine import URL

    params = conninfo_to_dict(conninfo)
    host = str(params.get("host") or "") or None
    port = int(str(params["port"])) if params.get("port") else None
    query: dict[str, str] = {}
    if host and host.startswith("/"):
        query["host"] = host
        host = None
    url = URL.create(
        f"postgresql+{driver}",
        username=str(params["user"]) if params.get("user") else None,
        password=str(params["password"]) if params.get("password") else None,
        host=host,
        port=port,
        database=str(params["dbname"]) if params.get("dbname") else None,
        query=query,
    )
    return url.render_as_string(hide_password=False)
