"""Write the sync twin of each async source file, so both keep one behaviour.

Usage: ``python tools/async_to_sync.py`` regenerates every pair; ``--check``
exits non-zero when a committed sync file differs from what would be generated
(the test suite runs this check).

The async file is parsed into a concrete syntax tree (libcst, which keeps
comments and layout), transformed, then written with a header and formatted by
ruff. The transformation:

- drops ``async`` from ``def``, ``with``, ``for`` and comprehensions, and
  ``await`` from expressions;
- renames identifiers by :data:`RENAMES` plus the pair's own renames: every
  name in the code (variables, attributes, parameters, definitions, imported
  names, the parts of a dotted module path) whose whole spelling is a key, and
  every string literal that is exactly such a name (as in ``__all__``);
- applies the same whole-word renames inside comments and docstrings (string
  literals standing alone as a statement), and nothing else to prose: write
  docstrings to read right in both twins.

Two markers in the async source ask for more:

- ``# SYNC: old -> new, ...`` at the end of a one-line statement renames those
  identifiers in that statement only, and goes away::

      is_async: ClassVar[Literal[True]] = True  # SYNC: True -> False

- ``if True:  # ASYNC`` keeps only the ``else`` body of its block, or drops the
  block whole when it has no ``else``::

      if True:  # ASYNC
          <async-only statements>
      else:
          <sync-only statements>

  The async source stays valid Python: ``if True`` runs the async branch there,
  and mypy skips the ``else`` one, which it checks in the generated twin. It
  still takes a name annotated or imported in both branches for a
  redefinition: that is what the line marker is for.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pair:
    """An async source, the sync file generated from it, and renames for that file only."""

    source: str
    target: str
    renames: Mapping[str, str] = field(default_factory=dict)


#: Every pair, paths relative to the repository root.
PAIRS: tuple[Pair, ...] = (
    Pair(
        "src/sqlspec/extensions/adk/_store_service_async.py",
        "src/sqlspec/extensions/adk/_store_service_sync.py",
    ),
    Pair(
        "src/sqlspec/extensions/adk/session/_protocol_async.py",
        "src/sqlspec/extensions/adk/session/_protocol_sync.py",
    ),
    Pair(
        "src/sqlspec/extensions/adk/session/_service_async.py",
        "src/sqlspec/extensions/adk/session/_service_sync.py",
        # The sync service is a SQLSpecSessionService with its methods made blocking.
        {
            "SQLSpecSessionService": "SyncSQLSpecSessionService",
            "ADKSessionService": "SQLSpecSessionService",
        },
    ),
    Pair(
        "src/sqlspec/extensions/adk/memory/_protocol_async.py",
        "src/sqlspec/extensions/adk/memory/_protocol_sync.py",
    ),
    Pair(
        "src/sqlspec/extensions/adk/memory/_service_async.py",
        "src/sqlspec/extensions/adk/memory/_service_sync.py",
        {
            "SQLSpecMemoryService": "SyncSQLSpecMemoryService",
            "ADKMemoryService": "SQLSpecMemoryService",
            "embed_texts": "embed_texts_blocking",
        },
    ),
    Pair(
        "src/sqlspec/extensions/adk/artifact/_protocol_async.py",
        "src/sqlspec/extensions/adk/artifact/_protocol_sync.py",
    ),
    Pair(
        "src/sqlspec/extensions/adk/artifact/_service_async.py",
        "src/sqlspec/extensions/adk/artifact/_service_sync.py",
        {
            "SQLSpecArtifactService": "SyncSQLSpecArtifactService",
            "ADKArtifactService": "SQLSpecArtifactService",
        },
    ),
    Pair(
        "src/sqlspec/adapters/psycopg/_config_async.py",
        "src/sqlspec/adapters/psycopg/_config_sync.py",
        # Async deadlines run on the event loop, sync ones on the watchdog thread.
        {"_AsyncServerCursor": "_ServerCursor", "call_later": "watchdog"},
    ),
    Pair(
        "src/sqlspec/adapters/psycopg/adk/_store_async.py",
        "src/sqlspec/adapters/psycopg/adk/_store_sync.py",
    ),
    Pair(
        "src/sqlspec/adapters/psycopg/adk/session/_store_async.py",
        "src/sqlspec/adapters/psycopg/adk/session/_store_sync.py",
    ),
    Pair(
        "src/sqlspec/adapters/psycopg/adk/memory/_store_async.py",
        "src/sqlspec/adapters/psycopg/adk/memory/_store_sync.py",
    ),
    Pair(
        "src/sqlspec/adapters/psycopg/adk/artifact/_store_async.py",
        "src/sqlspec/adapters/psycopg/adk/artifact/_store_sync.py",
    ),
)

#: Whole-identifier renames for every pair.
RENAMES: Mapping[str, str] = {
    "PsycopgAsyncADKStore": "PsycopgSyncADKStore",
    "PsycopgAsyncConfig": "PsycopgSyncConfig",
    "AsyncStore": "SyncStore",
    "AsyncADKStore": "SyncADKStore",
    "AsyncADKMemoryStore": "SyncADKMemoryStore",
    "PsycopgAsyncADKMemoryStore": "PsycopgSyncADKMemoryStore",
    "AsyncADKArtifactStore": "SyncADKArtifactStore",
    "PsycopgAsyncADKArtifactStore": "PsycopgSyncADKArtifactStore",
    "awaitable_method": "loop_aware_method",
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCursor": "Cursor",
    "AsyncServerCursor": "ServerCursor",
    "AsyncRowFactory": "RowFactory",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "AsyncGenerator": "Generator",
    "asynccontextmanager": "contextmanager",
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "_store_async": "_store_sync",
    "_config_async": "_config_sync",
    "_protocol_async": "_protocol_sync",
    "_store_service_async": "_store_service_sync",
    "AsyncStoreService": "SyncStoreService",
}

HEADER = (
    "# WARNING: this file is auto-generated by 'tools/async_to_sync.py'\n"
    "# from the original file '{source}'\n"
    "# DO NOT CHANGE! Change the original file instead.\n"
)

#: Marks ``if True:`` as the async side of a block.
ASYNC_BLOCK = "# ASYNC"
#: Starts a line's own renames: ``# SYNC: old -> new, ...``.
SYNC_LINE = "# SYNC:"


class AsyncToSync(cst.CSTTransformer):
    """The tree rewrite described in the module docstring."""

    def __init__(self, renames: Mapping[str, str]) -> None:
        super().__init__()
        self.renames = renames
        self.line_renames: dict[str, str] = {}
        words = "|".join(map(re.escape, renames))
        self.word = re.compile(rf"(?<!\w)(?:{words})(?!\w)")

    def rename(self, name: str) -> str:
        """The sync spelling of identifier ``name``."""
        return self.line_renames.get(name, self.renames.get(name, name))

    def rename_words(self, text: str) -> str:
        """``text`` with every whole-word rename applied, for prose."""
        return self.word.sub(lambda match: self.renames[match[0]], text)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        comment = node.trailing_whitespace.comment
        self.line_renames = _line_renames(comment.value) if comment else {}
        return True

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine:
        if not self.line_renames:
            return updated_node
        self.line_renames = {}
        return updated_node.with_changes(trailing_whitespace=cst.TrailingWhitespace())

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        return updated_node.with_changes(asynchronous=None)

    def leave_With(self, original_node: cst.With, updated_node: cst.With) -> cst.With:
        return updated_node.with_changes(asynchronous=None)

    def leave_For(self, original_node: cst.For, updated_node: cst.For) -> cst.For:
        return updated_node.with_changes(asynchronous=None)

    def leave_CompFor(self, original_node: cst.CompFor, updated_node: cst.CompFor) -> cst.CompFor:
        return updated_node.with_changes(asynchronous=None)

    def leave_Await(self, original_node: cst.Await, updated_node: cst.Await) -> cst.BaseExpression:
        # ``await`` takes a primary, so its operand never needs parentheses of its own;
        # those around the ``await`` stay around the operand.
        operand = updated_node.expression
        return operand.with_changes(
            lpar=[*updated_node.lpar, *operand.lpar], rpar=[*operand.rpar, *updated_node.rpar]
        )

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        return updated_node.with_changes(value=self.rename(updated_node.value))

    def leave_Comment(self, original_node: cst.Comment, updated_node: cst.Comment) -> cst.Comment:
        return updated_node.with_changes(value=self.rename_words(updated_node.value))

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString
    ) -> cst.SimpleString:
        # A string that is exactly a renamed identifier is code, as in ``__all__``.
        return _with_text(updated_node, self.rename(updated_node.raw_value))

    def leave_Expr(self, original_node: cst.Expr, updated_node: cst.Expr) -> cst.Expr:
        # A docstring is prose: renamed word by word, from the original so once only.
        doc = original_node.value
        if not isinstance(doc, cst.SimpleString):
            return updated_node
        return updated_node.with_changes(value=_with_text(doc, self.rename_words(doc.raw_value)))

    def leave_If(
        self, original_node: cst.If, updated_node: cst.If
    ) -> cst.If | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        body = updated_node.body
        comment = body.header.comment if isinstance(body, cst.IndentedBlock) else None
        if comment is None or comment.value != ASYNC_BLOCK:
            return updated_node
        orelse = updated_node.orelse
        if not (isinstance(updated_node.test, cst.Name) and updated_node.test.value == "True"):
            raise ValueError(f"`{ASYNC_BLOCK}` marks only an `if True:`")
        if orelse is None:
            return cst.RemovalSentinel.REMOVE
        if not isinstance(orelse, cst.Else) or not isinstance(orelse.body, cst.IndentedBlock):
            raise ValueError(f"`if True:  {ASYNC_BLOCK}` takes a plain indented `else:`")
        # The comments above the block and above its ``else`` now stand above the sync code.
        first, *rest = orelse.body.body
        # Every statement is a simple line or a compound one; both have leading lines.
        assert isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement)
        leading = [*updated_node.leading_lines, *orelse.leading_lines, *first.leading_lines]
        return cst.FlattenSentinel([first.with_changes(leading_lines=leading), *rest])


def _line_renames(comment: str) -> dict[str, str]:
    """The renames a ``# SYNC: old -> new, ...`` comment asks for; none for another comment."""
    if not comment.startswith(SYNC_LINE):
        return {}
    renames = {}
    for item in comment.removeprefix(SYNC_LINE).split(","):
        old, arrow, new = (part.strip() for part in item.partition("->"))
        if not (arrow and old.isidentifier() and new.isidentifier()):
            raise ValueError(f"{comment!r}: write `{SYNC_LINE} old -> new, ...`")
        renames[old] = new
    return renames


def _with_text(string: cst.SimpleString, text: str) -> cst.SimpleString:
    """``string`` holding ``text`` instead, with the same prefix and quotes."""
    return string.with_changes(value=f"{string.prefix}{string.quote}{text}{string.quote}")


def to_sync(source: str, renames: Mapping[str, str] | None = None) -> str:
    """The sync twin of async ``source`` text, renamed by :data:`RENAMES` and ``renames``."""
    return cst.parse_module(source).visit(AsyncToSync({**RENAMES, **(renames or {})})).code


def convert(source: str, source_name: str, renames: Mapping[str, str] | None = None) -> str:
    """The file to write: :func:`to_sync` of ``source`` under the header, formatted."""
    return _ruff_format(HEADER.format(source=source_name) + to_sync(source, renames))


def _ruff_format(text: str) -> str:
    """Sort imports, drop those only the async side used, and format as the code base is."""
    for command in (
        ["check", "--select", "I,F401", "--fix", "--exit-zero", "--quiet"],
        ["format"],
    ):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", "generated.py", "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if a sync file is stale")
    args = parser.parse_args(argv)
    stale = []
    for pair in PAIRS:
        expected = convert((ROOT / pair.source).read_text(), pair.source, pair.renames)
        target = ROOT / pair.target
        if args.check:
            if not target.exists() or target.read_text() != expected:
                stale.append(pair.target)
        else:
            target.write_text(expected)
    for name in stale:
        print(f"{name} is stale: run python tools/async_to_sync.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
