"""``doctor``: is this database ready for sqlspec, and if not, what to do about it."""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import psycopg_pool
import typer
from rich.table import Table

from sqlspec.adapters.psycopg import _catalog
from sqlspec.adapters.psycopg._settings import PoolSettings
from sqlspec.adapters.psycopg.adk import (
    PsycopgSyncADKArtifactStore,
    PsycopgSyncADKMemoryStore,
    PsycopgSyncADKStore,
)
from sqlspec.adapters.psycopg.adk.session._import_adk import adk_sessions_beside
from sqlspec.adapters.psycopg.adk.session._schema import SCHEMA_VERSION
from sqlspec.cli._common import (
    CLIError,
    DsnOption,
    JsonOption,
    Target,
    artifacts_beside,
    emit_json,
    format_bytes,
    guarded,
    memory_beside,
    open_store,
    out_console,
    resolve_target,
)

__all__ = ["doctor"]

Status = Literal["ok", "info", "warning", "error"]
_STYLE = {"ok": "green", "info": "blue", "warning": "yellow", "error": "bold red"}
_LABEL = {"ok": "OK", "info": "INFO", "warning": "WARN", "error": "FAIL"}
_DEAD_ROWS_MIN = 10_000
_DEAD_RATIO = 0.2


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, and what to do about it."""

    name: str
    status: Status
    detail: str
    advice: str | None = None


def _pool_defaults() -> dict[str, Any]:
    params = inspect.signature(psycopg_pool.ConnectionPool.__init__).parameters
    keys = (
        "min_size",
        "max_size",
        "timeout",
        "max_waiting",
        "max_lifetime",
        "max_idle",
        "reconnect_timeout",
        "num_workers",
    )
    return {key: params[key].default for key in keys}


def _pool_settings(target: Target) -> dict[str, Any]:
    """The pool an application configured as ``--dsn`` says would get."""
    pool = {**_pool_defaults(), **PoolSettings.from_mapping(target.connection_config).pool}
    if pool.get("max_size") is None:
        pool["max_size"] = pool["min_size"]
    return pool


def _missing(name: str, status: Status, missing: list[str]) -> Check:
    """A check for tables or indexes that are gone, which ``migrate --repair`` recreates."""
    return Check(
        name,
        status,
        f"missing: {', '.join(missing)}",
        "recreate them with `sqlspec-adk migrate --repair`",
    )


def _schema_check(version: int | None, can_create: bool, user: str) -> Check:
    if version is None:
        advice = "create them with `sqlspec-adk init`"
        if not can_create:
            advice += (
                f"; user {user} may not create tables in this schema: run it as the owner, "
                f"or GRANT CREATE ON SCHEMA ... TO {user}"
            )
        return Check("schema", "error", "the sqlspec tables do not exist", advice)
    if version < SCHEMA_VERSION:
        return Check(
            "schema",
            "error",
            f"schema version {version}; this sqlspec writes version {SCHEMA_VERSION}",
            "upgrade it in place with `sqlspec-adk migrate`",
        )
    if version > SCHEMA_VERSION:
        return Check(
            "schema",
            "error",
            f"schema version {version} is newer than the {SCHEMA_VERSION} this sqlspec knows",
            "upgrade sqlspec (pip install -U sqlspec-adk-psycopg) before using this database",
        )
    return Check("schema", "ok", f"schema version {version}, as this sqlspec writes")


def _pool_check(pool: dict[str, Any], server: dict[str, Any], workers: int) -> Check:
    budget = server["max_connections"] - server["reserved_connections"]
    need = pool["max_size"] * workers
    in_use = server["connections"]
    what = f"max_size {pool['max_size']} x {workers} process(es) = {need} connections"
    if need > budget:
        return Check(
            "pool",
            "error",
            f"{what}, but the server accepts {budget} (max_connections "
            f"{server['max_connections']} - {server['reserved_connections']} reserved)",
            "lower max_size (?max_size=N in the sqlspec+postgresql:// URI, or connection_config) "
            "or raise max_connections on the server",
        )
    if need > budget - in_use:
        return Check(
            "pool",
            "warning",
            f"{what}; {budget - in_use} of {budget} connections are free now ({in_use} in use)",
            "expect pool timeouts under load: lower max_size, or free or raise connections",
        )
    return Check("pool", "ok", f"{what}; fits in {budget} ({in_use} in use now)")


def _server_checks(server: dict[str, Any], connect_ms: float, round_trip_ms: float) -> list[Check]:
    """How the connection went, and whether the server takes writes."""
    checks = [
        Check(
            "connection",
            "ok",
            f"connected in {connect_ms:.0f} ms; a round trip takes {round_trip_ms:.1f} ms",
        )
    ]
    if server["in_recovery"]:
        checks.append(
            Check(
                "server",
                "error",
                f"PostgreSQL {server['version']} is a read-only standby",
                "point --dsn at the primary: sessions cannot be written to a standby",
            )
        )
    else:
        checks.append(Check("server", "ok", f"PostgreSQL {server['version']}, primary"))
    return checks


def _index_checks(store: PsycopgSyncADKStore, indexes: list[dict[str, Any]]) -> list[Check]:
    """Indexes of the current schema that are missing or invalid."""
    checks: list[Check] = []
    present = {i["name"] for i in indexes}
    absent = [name for name in store.schema.index_names if name not in present]
    invalid = [i["name"] for i in indexes if not i["valid"]]
    if absent:
        checks.append(_missing("indexes", "warning", absent))
    if invalid:
        checks.append(
            Check(
                "indexes",
                "warning",
                f"invalid (a failed concurrent build?): {', '.join(invalid)}",
                "rebuild them: " + "; ".join(f"REINDEX INDEX {n}" for n in invalid),
            )
        )
    if not absent and not invalid:
        checks.append(Check("indexes", "ok", f"{len(indexes)} indexes, all valid"))
    return checks


def _data_checks(
    store: PsycopgSyncADKStore,
    version: int | None,
    tables: list[dict[str, Any]],
    indexes: list[dict[str, Any]],
) -> list[Check]:
    """Tables and indexes of the schema, expired sessions, and bloat."""
    checks: list[Check] = []
    if version is not None:
        missing = [t["name"] for t in tables if not t["exists"]]
        if missing:
            checks.append(_missing("tables", "error", missing))
        else:
            checks.append(Check("tables", "ok", "all four tables exist"))
    if version == SCHEMA_VERSION:
        checks += _index_checks(store, indexes)
        expired = store.count_expired()
        if expired:
            checks.append(
                Check(
                    "expired",
                    "warning",
                    f"{expired} expired session(s) still stored",
                    "delete them with `sqlspec-adk prune` (e.g. from cron)",
                )
            )
    for table in tables:
        dead, live = table["dead_rows"] or 0, table["live_rows"] or 0
        if dead > _DEAD_ROWS_MIN and dead > _DEAD_RATIO * live:
            checks.append(
                Check(
                    "bloat",
                    "warning",
                    f"{table['name']}: {dead} dead rows for {live} live ones",
                    f"VACUUM (ANALYZE) {table['name']}; check that autovacuum keeps up",
                )
            )
    return checks


def _adk_check(adk_sessions: int | None) -> list[Check]:
    """A pointer to ``import-adk`` when ADK's own tables sit beside ours."""
    if adk_sessions is None:
        return []
    return [
        Check(
            "adk-tables",
            "info",
            f"ADK DatabaseSessionService tables found, {adk_sessions} session(s)",
            "copy them into sqlspec with `sqlspec-adk import-adk`",
        )
    ]


def _memory_checks(
    memory: PsycopgSyncADKMemoryStore, table: dict[str, Any], indexes: list[dict[str, Any]]
) -> list[Check]:
    """The memory table: whether it is there, how many memories, its search index."""
    if not table["exists"]:
        return [
            Check(
                "memory",
                "info",
                f"no memory table {memory.memory_table}",
                "create it with `sqlspec-adk memory init` (the memory service does on first use)",
            )
        ]
    (search_index,) = memory.schema.index_names
    index = next((i for i in indexes if i["name"] == search_index), None)
    if index is None or not index["valid"]:
        problem = "missing" if index is None else "invalid"
        return [
            Check(
                "memory",
                "warning",
                f"{memory.memory_table}: search index {search_index} is {problem}",
                "recreate it with `sqlspec-adk memory init`"
                if index is None
                else f"REINDEX INDEX {search_index}",
            )
        ]
    count = memory.count()
    return [Check("memory", "ok", f"{memory.memory_table}: {count} memories, search index valid")]


def _artifact_check(artifacts: PsycopgSyncADKArtifactStore, tables: list[dict[str, Any]]) -> Check:
    """The artifact tables: whether they are there, how many versions, their size on disk."""
    versions, files, blobs, _chunks = tables
    if not versions["exists"]:
        return Check(
            "artifacts",
            "info",
            f"no artifact table {artifacts.artifact_table}",
            "the artifact service creates the tables on first use (or `sqlspec-adk artifacts put`)",
        )

    def rows(table: dict[str, Any]) -> str:
        return f"{'' if table['rows_exact'] else '~'}{table['rows']}"

    size = format_bytes(sum(t["total_bytes"] for t in tables if t["exists"]))
    return Check(
        "artifacts",
        "ok",
        f"{artifacts.artifact_table}: {rows(versions)} versions of {rows(files)} files, "
        f"{rows(blobs)} distinct contents, {size} on disk",
    )


def _pgvector_check(available: str | None, installed: str | None) -> Check:
    """Whether vector search can be had here."""
    if installed:
        return Check("pgvector", "ok", f"pgvector {installed} installed: vector search available")
    if available:
        return Check(
            "pgvector",
            "info",
            f"pgvector {available} available, not installed",
            "a memory store with embedding_dimension creates it (CREATE EXTENSION vector)",
        )
    return Check(
        "pgvector",
        "info",
        "pgvector is not available on this server: memory search is full-text only",
        "install pgvector on the server for vector search",
    )


_SERVER_FIELDS = (
    "version",
    "database",
    "user",
    "schema",
    "max_connections",
    "connections",
    "in_recovery",
    "timezone",
)
_TABLE_FIELDS = (
    "name",
    "exists",
    "rows",
    "rows_exact",
    "dead_rows",
    "table_bytes",
    "index_bytes",
    "total_bytes",
)
_INDEX_FIELDS = ("name", "table", "bytes", "valid", "primary", "definition")


def _diagnose(
    store: PsycopgSyncADKStore,
    memory: PsycopgSyncADKMemoryStore,
    artifacts: PsycopgSyncADKArtifactStore,
    target: Target,
    workers: int,
) -> dict[str, Any]:
    started = time.perf_counter()
    conn = store.config.create_connection()
    connect_ms = (time.perf_counter() - started) * 1000
    with conn:
        conn.autocommit = True
        round_trip_ms = _catalog.round_trip_ms(conn)
        server = _catalog.server_info(conn)
        checks = _server_checks(server, connect_ms, round_trip_ms)
        version = store.schema_version()
        checks.append(_schema_check(version, bool(server["can_create"]), server["user"]))
        tables = _catalog.table_stats(conn, store.tables.all)
        indexes = _catalog.index_stats(conn, [t["oid"] for t in tables if t["exists"]])
        checks += _data_checks(store, version, tables, indexes)
        (memory_table,) = _catalog.table_stats(conn, [memory.memory_table])
        memory_indexes = _catalog.index_stats(conn, [memory_table["oid"]] * memory_table["exists"])
        checks += _memory_checks(memory, memory_table, memory_indexes)
        checks.append(_pgvector_check(*_catalog.extension(conn, "vector")))
        if memory_table["exists"]:
            tables.append(memory_table)
            indexes += memory_indexes
        schema = artifacts.schema
        artifact_tables = _catalog.table_stats(
            conn, [schema.table, schema.files, schema.blobs, schema.chunks]
        )
        checks.append(_artifact_check(artifacts, artifact_tables))
        present = [t for t in artifact_tables if t["exists"]]
        tables += present
        indexes += _catalog.index_stats(conn, [t["oid"] for t in present])
        pool = _pool_settings(target)
        checks.append(_pool_check(pool, server, workers))
        checks += _adk_check(adk_sessions_beside(conn, store.tables))
    timings = {"connect_ms": round(connect_ms, 2), "round_trip_ms": round(round_trip_ms, 3)}
    return {
        "target": target.describe(),
        "server": {key: server[key] for key in _SERVER_FIELDS} | timings,
        "schema": {"version": version, "expected": SCHEMA_VERSION},
        "pool": pool | {"workers": workers},
        "tables": [{key: t[key] for key in _TABLE_FIELDS} for t in tables],
        "indexes": [{key: i[key] for key in _INDEX_FIELDS} for i in indexes],
        "checks": [asdict(c) for c in checks],
    }


def _print(report: dict[str, Any]) -> None:
    console = out_console()
    console.print(f"[bold]sqlspec-adk doctor[/] - {report['target']}")
    checks = Table(show_header=False, box=None, padding=(0, 1))
    checks.add_column(no_wrap=True, min_width=4)
    checks.add_column(no_wrap=True, style="bold")
    checks.add_column(overflow="fold")
    for check in report["checks"]:
        status = check["status"]
        checks.add_row(f"[{_STYLE[status]}]{_LABEL[status]}[/]", check["name"], check["detail"])
        if check["advice"]:
            checks.add_row("", "", f"[cyan]-> {check['advice']}[/]")
    console.print(checks)
    if report.get("tables"):
        tables = Table(title="Tables", title_justify="left")
        for column in ("table", "rows", "dead rows", "data", "indexes", "total"):
            tables.add_column(column, justify="left" if column == "table" else "right")
        for t in report["tables"]:
            if not t["exists"]:
                tables.add_row(t["name"], "[red]missing[/]", "", "", "", "")
                continue
            rows = "-" if t["rows"] is None else f"{t['rows']:,}"
            rows = rows if t["rows_exact"] else f"~{rows}"
            tables.add_row(
                t["name"],
                rows,
                f"{t['dead_rows'] or 0:,}",
                format_bytes(t["table_bytes"]),
                format_bytes(t["index_bytes"]),
                format_bytes(t["total_bytes"]),
            )
        console.print(tables)
    if report.get("indexes"):
        indexes = Table(title="Indexes", title_justify="left")
        for column in ("index", "table", "size", "valid"):
            indexes.add_column(column, justify="right" if column == "size" else "left")
        for i in report["indexes"]:
            valid = "[green]yes[/]" if i["valid"] else "[red]no[/]"
            indexes.add_row(i["name"], i["table"], format_bytes(i["bytes"]), valid)
        console.print(indexes)
    if report.get("pool"):
        pool = Table(title="Pool (as the --dsn URI sets it)", title_justify="left")
        pool.add_column("setting")
        pool.add_column("value", justify="right")
        for key, value in report["pool"].items():
            pool.add_row(key, str(value))
        console.print(pool)
    errors = sum(c["status"] == "error" for c in report["checks"])
    warnings = sum(c["status"] == "warning" for c in report["checks"])
    if errors or warnings:
        console.print(f"[bold red]{errors} error(s)[/], [yellow]{warnings} warning(s)[/].")
    else:
        console.print("[green]No problems found.[/]")


@guarded
def doctor(
    *,
    dsn: DsnOption = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Processes that each open the pool (e.g. server workers), for the pool check.",
        ),
    ] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Check connectivity, server, schema version, tables, indexes and pool; advise.

    Exits 1 when something is wrong (with --strict, also on warnings).
    """
    target = resolve_target(dsn)
    try:
        with open_store(dsn) as store:
            report = _diagnose(
                store, memory_beside(store, dsn), artifacts_beside(store, dsn), target, workers
            )
    except CLIError as exc:
        if not exc.message.startswith("cannot connect"):
            raise
        report = {
            "target": target.describe(),
            "checks": [
                asdict(
                    Check(
                        "connection",
                        "error",
                        exc.message,
                        "is the server running and reachable? check host, port, user and "
                        "password in --dsn or SQLSPEC_DSN",
                    )
                )
            ],
        }
    if json_output:
        statuses = {c["status"] for c in report["checks"]}
        emit_json({"ok": "error" not in statuses, **report})
    else:
        _print(report)
    statuses = {c["status"] for c in report["checks"]}
    if "error" in statuses or (strict and "warning" in statuses):
        raise typer.Exit(1)
