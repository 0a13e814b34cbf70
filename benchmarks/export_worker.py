"""One streaming export in a fresh process; prints its time and peak RSS as JSON.

Run by scenario 6 once per (API, size), so each peak RSS belongs to one export:
``python -m benchmarks.export_worker --dsn ... --api export_jsonl --app A --user U --session S``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import os
import resource
import sys
import time
from typing import Any, BinaryIO, TextIO

__all__ = ["EXPORT_APIS", "export_method", "main"]

#: The store's export APIs the worker knows, by the name the report shows.
EXPORT_APIS = ("export_jsonl", "iter_events", "raw_copy")


def export_method(store: Any) -> Any:
    """The store's JSON Lines export method (``export_events_jsonl`` or ``export_jsonl``)."""
    return getattr(store, "export_events_jsonl", None) or getattr(store, "export_jsonl", None)


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field in MiB (NaN where there is no such file)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    """This process's peak RSS.

    On Linux ``VmHWM`` is read from ``/proc/self/status``: ``ru_maxrss`` would
    report the parent's peak, inherited through fork (the benchmark process can be
    large), where ``VmHWM`` starts over with exec.
    """
    peak_mb = _status_mb("VmHWM")
    if not math.isnan(peak_mb):
        return peak_mb
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, others KiB.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


async def _run(args: argparse.Namespace, sink: TextIO, raw_sink: BinaryIO) -> dict[str, Any]:
    from sqlspec.adapters.psycopg import PsycopgAsyncConfig
    from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore

    config = PsycopgAsyncConfig({"conninfo": args.dsn, "min_size": 1, "max_size": 2})
    try:
        return await _export(args, PsycopgAsyncADKStore(config), sink, raw_sink)
    finally:
        await config.close()


async def _export(
    args: argparse.Namespace, store: Any, sink: TextIO, raw_sink: BinaryIO
) -> dict[str, Any]:
    """Stream the export to ``sink`` (text) or ``raw_sink`` (the floor's bytes)."""
    config = store.config
    await config.provide_pool()
    baseline = _status_mb("VmRSS")
    count = 0
    started = time.perf_counter()
    if args.api == "export_jsonl":
        method = export_method(store)
        accepted = inspect.signature(method).parameters
        scope = {"app_name": args.app, "user_id": args.user, "session_id": args.session}
        kwargs = {k: v for k, v in scope.items() if k in accepted}
        counts = await method(sink, **kwargs)
        count = int(counts.get("event", sum(counts.values()))) if counts else 0
    elif args.api == "iter_events":
        async for _event in store.iter_events(
            app_name=args.app, user_id=args.user, session_id=args.session
        ):
            count += 1
    elif args.api == "raw_copy":
        from benchmarks.raw import SCHEMA_QUERY, SCHEMA_TABLES, RawSchema, RawStatements

        async with config.provide_connection() as conn, conn.cursor() as cur:
            await cur.execute(SCHEMA_QUERY, (SCHEMA_TABLES,))
            statements = RawStatements(RawSchema.from_rows(await cur.fetchall()))
            params = {"app_name": args.app, "user_id": args.user}
            async with cur.copy(statements.export_events.encode(), params) as copy:
                async for block in copy:
                    raw_sink.write(block)
                    count += bytes(block).count(b"\n")
    else:
        raise SystemExit(f"unknown api {args.api!r}")
    elapsed = time.perf_counter() - started
    return {
        "api": args.api,
        "events": count,
        "seconds": elapsed,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--api", choices=EXPORT_APIS, required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--session", required=True)
    args = parser.parse_args(argv)
    # Exports go to the null device: what is measured is the store, not the disk.
    with open(os.devnull, "w") as sink, open(os.devnull, "wb") as raw_sink:
        print(json.dumps(asyncio.run(_run(args, sink, raw_sink))))


if __name__ == "__main__":
    main()
