"""``sqlspec-adk artifacts``: store, list, read back and delete agents' files from a terminal."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from benchmarks.measure import run_measured
from google.adk.artifacts import artifact_util
from google.genai import types
from typer.testing import CliRunner

from helpers import service_uri
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKArtifactStore
from sqlspec.cli import app
from sqlspec.extensions.adk import SQLSpecArtifactService


@pytest.fixture
def cli() -> Any:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SQLSPEC_DSN": None})

    def invoke(*args: str, code: int = 0, input: bytes | None = None) -> Any:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.output
        return result

    return invoke


WHO = ("--app", "shop", "--user", "alice")
IN_SESSION = (*WHO, "--session", "s1")
#: Bytes that are not UTF-8, and more than one progress block.
PAYLOAD = bytes(range(256)) * 5000


def test_put_list_get_delete(cli: Any, dsn: str, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(PAYLOAD)
    saved = cli("artifacts", "put", "report.pdf", str(source), *IN_SESSION, "--dsn", dsn)
    assert "Saved report.pdf version 0" in saved.stdout
    assert "application/pdf" in saved.stdout
    cli("artifacts", "put", "report.pdf", "-", *IN_SESSION, "--dsn", dsn, input=b"second")

    listed = cli("artifacts", "list", *IN_SESSION, "--dsn", dsn).stdout
    assert "report.pdf" in listed
    assert "application/pdf" in listed
    data = json.loads(cli("artifacts", "list", *IN_SESSION, "--dsn", dsn, "--json").stdout)
    assert [(f["filename"], [v["version"] for v in f["versions"]]) for f in data] == [
        ("report.pdf", [0, 1])
    ]

    target = tmp_path / "out.pdf"
    cli(
        "artifacts",
        "get",
        "report.pdf",
        *IN_SESSION,
        "--version",
        "0",
        "-o",
        str(target),
        "--dsn",
        dsn,
    )
    assert target.read_bytes() == PAYLOAD
    latest = cli("artifacts", "get", "report.pdf", *IN_SESSION, "--dsn", dsn)
    assert latest.stdout_bytes == b"second"

    deleted = cli("artifacts", "delete", "report.pdf", *IN_SESSION, "--dsn", dsn)
    assert "Deleted report.pdf (2 version(s))" in deleted.stdout
    cli("artifacts", "delete", "report.pdf", *IN_SESSION, "--dsn", dsn, code=1)
    assert "No artifacts." in cli("artifacts", "list", *IN_SESSION, "--dsn", dsn).stdout
    gone = cli("artifacts", "get", "report.pdf", *IN_SESSION, "--dsn", dsn, code=1)
    assert "no artifact 'report.pdf'" in gone.stderr


def test_user_files_need_no_session_and_session_files_do(cli: Any, dsn: str) -> None:
    cli("artifacts", "put", "user:notes.txt", "-", *WHO, "--dsn", dsn, input="héllo".encode())
    got = cli("artifacts", "get", "user:notes.txt", *WHO, "--dsn", dsn)
    assert got.stdout_bytes == "héllo".encode()
    listed = json.loads(cli("artifacts", "list", *IN_SESSION, "--dsn", dsn, "--json").stdout)
    assert [(f["filename"], f["versions"][0]["mime_type"]) for f in listed] == [
        ("user:notes.txt", "text/plain")
    ]
    refused = cli("artifacts", "put", "plan.txt", "-", *WHO, "--dsn", dsn, input=b"x", code=1)
    assert "Session ID must be provided" in refused.stderr


def test_metadata_and_mime_type_are_stored(cli: Any, dsn: str) -> None:
    put = cli(
        "artifacts",
        "put",
        "blob",
        "-",
        *IN_SESSION,
        "--dsn",
        dsn,
        "--json",
        "--mime-type",
        "image/png",
        "--metadata",
        '{"source": "camera", "n": 2}',
        input=b"\x89PNG",
    )
    assert json.loads(put.stdout) == {
        "filename": "blob",
        "version": 0,
        "bytes": 4,
        "mime_type": "image/png",
    }
    (listed,) = json.loads(cli("artifacts", "list", *IN_SESSION, "--dsn", dsn, "--json").stdout)
    (version,) = listed["versions"]
    assert version["mime_type"] == "image/png"
    assert version["custom_metadata"] == {"source": "camera", "n": 2}
    bad = cli(
        "artifacts",
        "put",
        "blob",
        "-",
        *IN_SESSION,
        "--metadata",
        "[1]",
        "--dsn",
        dsn,
        input=b"",
        code=2,
    )
    assert "JSON object" in bad.stderr


def test_reading_before_anything_was_stored_says_so(cli: Any, dsn: str) -> None:
    result = cli("artifacts", "list", *WHO, "--dsn", dsn, code=1)
    assert "artifact tables do not exist" in result.stderr
    assert "artifacts put" in result.stderr


def test_the_size_limit_from_a_service_uri_refuses_a_big_file(
    cli: Any, dsn: str, tmp_path: Path
) -> None:
    uri = service_uri(dsn, scheme="sqlspec+postgresql", max_artifact_bytes=10)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 11)
    refused = cli("artifacts", "put", "big.bin", str(big), *IN_SESSION, "--dsn", uri, code=1)
    assert "the artifact is 11 bytes; the store takes at most 10" in refused.stderr
    assert "nothing was written" in refused.stderr
    # A file is refused by its size before anything reaches the database, even the tables.
    assert (
        "artifact tables do not exist"
        in cli("artifacts", "list", *WHO, "--dsn", uri, code=1).stderr
    )
    # A pipe is refused once more has come than the limit, its transaction rolled back.
    args = ("artifacts", "put", "big.bin", "-", *IN_SESSION, "--dsn", uri)
    refused = cli(*args, input=b"x" * 11, code=1)
    assert "the artifact is 11 bytes or more" in refused.stderr
    assert "No artifacts" in cli("artifacts", "list", *IN_SESSION, "--dsn", uri).stdout
    cli("artifacts", "put", "big.bin", "-", *IN_SESSION, "--dsn", uri, input=b"x" * 10)
    listed = json.loads(cli("artifacts", "list", *IN_SESSION, "--dsn", uri, "--json").stdout)
    assert [v["version"] for v in listed[0]["versions"]] == [0]


def doctor_check(cli: Any, dsn: str) -> dict[str, Any]:
    report = json.loads(cli("doctor", "--dsn", dsn, "--json").stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "artifacts"]
    check["tables"] = [t["name"] for t in report["tables"] if "artifact" in t["name"]]
    return dict(check)


def test_doctor_reports_the_artifacts_and_their_size(cli: Any, dsn: str) -> None:
    cli("init", "--dsn", dsn)
    before = doctor_check(cli, dsn)
    assert (before["status"], before["detail"]) == ("info", "no artifact table adk_artifacts")
    assert before["tables"] == []
    for name in ("user:a", "user:b"):
        cli("artifacts", "put", name, "-", *WHO, "--dsn", dsn, input=b"same bytes")
    after = doctor_check(cli, dsn)
    assert after["status"] == "ok"
    assert after["detail"].startswith("adk_artifacts: 2 versions of 2 files, 1 distinct contents, ")
    assert after["detail"].endswith(" on disk")
    assert after["tables"] == [
        "adk_artifacts",
        "adk_artifact_files",
        "adk_artifact_blobs",
        "adk_artifact_chunks",
    ]


def test_put_reads_a_named_pipe_and_shows_progress(cli: Any, dsn: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as writer:
            writer.write(PAYLOAD)

    writer = threading.Thread(target=feed)
    writer.start()
    args = ("artifacts", "put", "p.bin", str(fifo), *IN_SESSION, "--dsn", dsn, "--progress")
    saved = cli(*args)
    writer.join()
    assert "reading" in saved.stderr
    assert "Saved p.bin version 0" in saved.stdout
    target = tmp_path / "back.bin"
    got = cli(
        "artifacts", "get", "p.bin", *IN_SESSION, "-o", str(target), "--dsn", dsn, "--progress"
    )
    assert "writing" in got.stderr
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "back.bin.partial").exists()
    deleted = cli("artifacts", "delete", "p.bin", *IN_SESSION, "--dsn", dsn, "--json")
    assert json.loads(deleted.stdout) == {"filename": "p.bin", "versions": 1}


def test_get_writes_a_text_artifact_as_utf8_and_refuses_a_reference(cli: Any, dsn: str) -> None:
    store = PsycopgSyncADKArtifactStore(PsycopgSyncConfig(connection_config={"conninfo": dsn}))
    try:
        store.create_tables()
        service = SQLSpecArtifactService(store)
        ids: dict[str, Any] = {"app_name": "shop", "user_id": "alice", "session_id": "s1"}
        service.save_artifact(filename="note", artifact=types.Part(text="héllo"), **ids)
        reference = types.Part(file_data=types.FileData(file_uri="gs://b/x.pdf"))
        service.save_artifact(filename="ref", artifact=reference, **ids)
        uri = artifact_util.get_artifact_uri(filename="note", version=0, **ids)
        alias = types.Part(file_data=types.FileData(file_uri=uri))
        service.save_artifact(filename="alias", artifact=alias, **ids)
    finally:
        store.close()
    assert (
        cli("artifacts", "get", "note", *IN_SESSION, "--dsn", dsn).stdout_bytes == "héllo".encode()
    )
    # An artifact:// reference is followed, as the service follows it.
    assert (
        cli("artifacts", "get", "alias", *IN_SESSION, "--dsn", dsn).stdout_bytes == "héllo".encode()
    )
    refused = cli("artifacts", "get", "ref", *IN_SESSION, "--dsn", dsn, code=1)
    assert "only a reference to 'gs://b/x.pdf'" in refused.stderr


def test_prune_deletes_contents_no_version_holds(cli: Any, dsn: str) -> None:
    cli("artifacts", "put", "user:a", "-", *WHO, "--dsn", dsn, input=b"kept")
    cli("artifacts", "put", "user:b", "-", *WHO, "--dsn", dsn, input=b"orphaned")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM adk_artifacts WHERE filename = 'user:b'")
    pruned = cli("artifacts", "prune", "--dsn", dsn, "--json")
    assert json.loads(pruned.stdout) == {"contents": 1, "bytes": len(b"orphaned")}
    assert "Deleted 0 content(s)" in cli("artifacts", "prune", "--dsn", dsn).stdout
    assert cli("artifacts", "get", "user:a", *WHO, "--dsn", dsn).stdout_bytes == b"kept"


def run_cli(*args: str, tmp_path: Path) -> tuple[str, int]:
    """Run ``sqlspec-adk`` in a child process; return its stdout and its peak memory in bytes."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        status, _, peak = run_measured("sqlspec.cli", list(args), stdout, stderr)
    assert status == 0, err.read_text()
    return out.read_text(), peak


@pytest.mark.slow
def test_500_mb_streams_through_put_and_get_in_little_memory(dsn: str, tmp_path: Path) -> None:
    # The file, its copy back, its export and the server's copy: about 2 GB at once.
    if shutil.disk_usage(tmp_path).free < 3 << 30:
        pytest.skip("needs 3 GiB of free disk beside the test's temporary files")
    size, block = 500 * 10**6, os.urandom(1 << 20)
    source, back = tmp_path / "big.bin", tmp_path / "back.bin"
    digest = hashlib.sha256()
    with source.open("wb") as file:
        for start in range(0, size, len(block)):
            piece = block[: size - start] + start.to_bytes(8)  # no two chunks alike
            file.write(piece)
            digest.update(piece)
    uri = service_uri(dsn, scheme="sqlspec+postgresql", max_artifact_bytes=512 << 20)
    where = ("--app", "a", "--user", "u", "--dsn", uri)
    saved, put_peak = run_cli(
        "artifacts", "put", "user:big.bin", str(source), *where, "--json", tmp_path=tmp_path
    )
    assert json.loads(saved)["version"] == 0
    _, get_peak = run_cli(
        "artifacts", "get", "user:big.bin", "-o", str(back), *where, tmp_path=tmp_path
    )
    with back.open("rb") as file:
        assert hashlib.file_digest(file, "sha256").digest() == digest.digest()
    back.unlink()
    run_cli("init", "--dsn", uri, tmp_path=tmp_path)
    exported, export_peak = run_cli(
        "export", str(tmp_path / "all.jsonl"), "--dsn", uri, "--json", tmp_path=tmp_path
    )
    assert json.loads(exported)["lines"]["artifact_chunk"] == 477
    # The command itself takes ~75 MB; a held artifact would add 500 MB or more.
    assert put_peak < 150 * 10**6
    assert get_peak < 150 * 10**6
    assert export_peak < 150 * 10**6, (put_peak, get_peak, export_peak)


COPY_TABLES = {
    "session_table": "copy_sessions",
    "events_table": "copy_events",
    "app_state_table": "copy_app_states",
    "user_state_table": "copy_user_states",
    "artifact_table": "copy_artifacts",
    "file_table": "copy_artifact_files",
    "blob_table": "copy_artifact_blobs",
    "chunk_table": "copy_artifact_chunks",
}


def every_version(dsn: str, **tables: str) -> dict[tuple[str, int], Any]:
    """Every stored version of app shop, user alice, session s1: part and metadata."""
    names: dict[str, Any] = {k: v for k, v in tables.items() if k in ARTIFACT_TABLE_OPTIONS}
    store = PsycopgSyncADKArtifactStore(
        PsycopgSyncConfig(connection_config={"conninfo": dsn}), **names
    )
    try:
        service = SQLSpecArtifactService(store)
        ids: dict[str, Any] = {"app_name": "shop", "user_id": "alice", "session_id": "s1"}
        return {
            (key, info.version): (
                service.load_artifact(filename=key, version=info.version, **ids),
                info.mime_type,
                info.custom_metadata,
                info.create_time,
            )
            for key in service.list_artifact_keys(**ids)
            for info in service.list_artifact_versions(filename=key, **ids)
        }
    finally:
        store.close()


ARTIFACT_TABLE_OPTIONS = ("artifact_table", "file_table", "blob_table", "chunk_table")


@pytest.mark.parametrize("name", ["dump.jsonl", "dump.jsonl.gz"])
def test_export_and_import_carry_artifacts(cli: Any, dsn: str, tmp_path: Path, name: str) -> None:
    cli("init", "--dsn", dsn)
    big = os.urandom(3 * (1 << 20) + 1)
    puts = [("report.pdf", big), ("report.pdf", PAYLOAD), ("user:same", PAYLOAD), ("empty", b"")]
    for filename, data in puts:
        cli("artifacts", "put", filename, "-", *IN_SESSION, "--dsn", dsn, input=data)
    store = PsycopgSyncADKArtifactStore(PsycopgSyncConfig(connection_config={"conninfo": dsn}))
    try:
        service = SQLSpecArtifactService(store)
        ids: dict[str, Any] = {"app_name": "shop", "user_id": "alice", "session_id": "s1"}
        service.save_artifact(filename="note", artifact=types.Part(text="héllo"), **ids)
        reference = types.Part(file_data=types.FileData(file_uri="gs://b/x.pdf"))
        service.save_artifact(filename="ref", artifact=reference, custom_metadata={"k": [1]}, **ids)
    finally:
        store.close()
    path = tmp_path / name
    exported = json.loads(cli("export", str(path), "--dsn", dsn, "--json").stdout)["lines"]
    # Four distinct contents (PAYLOAD, twice, is one): 4 + 2 + 0 + 1 chunks; six versions.
    assert (exported["artifact_blob"], exported["artifact_chunk"], exported["artifact"]) == (
        4,
        7,
        6,
    )
    target = service_uri(dsn, **COPY_TABLES)
    imported = json.loads(cli("import", str(path), "--dsn", target, "--json").stdout)
    assert (imported["imported"]["artifact"], imported["skipped"]["artifact"]) == (6, 0)
    assert every_version(dsn, **COPY_TABLES) == every_version(dsn)
    again = json.loads(cli("import", str(path), "--dsn", target, "--json").stdout)
    assert (again["imported"]["artifact"], again["skipped"]["artifact"]) == (0, 6)
    # Numbering goes on where the source left off.
    more = cli(
        "artifacts", "put", "report.pdf", "-", *IN_SESSION, "--dsn", target, "--json", input=b"3"
    )
    assert json.loads(more.stdout)["version"] == 2


def test_an_import_refuses_content_missing_or_not_matching_its_hash(
    cli: Any, dsn: str, tmp_path: Path
) -> None:
    cli("init", "--dsn", dsn)
    cli("artifacts", "put", "user:a", "-", *WHO, "--dsn", dsn, input=b"kept")
    cli("artifacts", "put", "user:b", "-", *WHO, "--dsn", dsn, input=b"the real report")
    lines = cli("export", "-", "--dsn", dsn).stdout.splitlines()
    real = base64.b64encode(b"the real report").decode()
    forged = base64.b64encode(b"X" * len(b"the real report")).decode()
    truncated = [line for line in lines if real not in line]
    doctored = [line.replace(real, forged) for line in lines]
    target = service_uri(dsn, **COPY_TABLES)
    for bad in (truncated, doctored):
        refused = cli("import", "-", "--dsn", target, input="\n".join(bad), code=1)
        assert "1 artifact version line(s) cannot be imported" in refused.stderr
        assert "nothing of the artifacts was imported" in refused.stderr
        assert "artifact tables do not exist" not in refused.stderr
        assert "No artifacts" in cli("artifacts", "list", *WHO, "--dsn", target).stdout
    # The true bytes saved later read back as themselves, not as the forged ones.
    cli("artifacts", "put", "user:c", "-", *WHO, "--dsn", target, input=b"the real report")
    got = cli("artifacts", "get", "user:c", *WHO, "--dsn", target).stdout_bytes
    assert got == b"the real report"


def test_an_export_imported_twice_over_counts_each_line_once(cli: Any, dsn: str) -> None:
    cli("init", "--dsn", dsn)
    cli("artifacts", "put", "user:a", "-", *WHO, "--dsn", dsn, input=PAYLOAD)
    cli("artifacts", "put", "user:b", "-", *WHO, "--dsn", dsn, input=PAYLOAD)
    dump = cli("export", "-", "--dsn", dsn).stdout
    target = service_uri(dsn, **COPY_TABLES)
    imported = json.loads(cli("import", "-", "--dsn", target, "--json", input=dump + dump).stdout)
    assert imported["imported"]["artifact"] == 2
    assert cli("artifacts", "get", "user:b", *WHO, "--dsn", target).stdout_bytes == PAYLOAD
