"""Every statement the stores send, checked against what Citus needs to run it on one worker.

No Citus engine runs here. The statements and the DDL are parsed with PostgreSQL's
own parser (``pglast``, libpg_query) and checked against the design in
``docs/scale-out.md``: every table but ``adk_app_states`` (a reference table) is
distributed by ``user_id`` and co-located. A router-executable statement
references each distributed table filtered by equality on ``user_id`` (directly,
or through an equality with another such column), all to one and the same
parameter, and writes no reference table; every primary key, unique key and
foreign key of a distributed table holds ``user_id``.

Each statement is either hot (it must pass) or listed in :data:`MULTI_SHARD` with
the reason it spans users. What fails today is listed in :data:`ROUTER_DIVERGENCES`
and :data:`KEY_DIVERGENCES` as strict xfails, each with what must change: fixing
one fails its entry until it is deleted.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pglast import ast, parse_sql
from pglast.enums import ConstrType, SetOperation

from sqlspec.adapters.psycopg.adk._statement import Statement
from sqlspec.adapters.psycopg.adk.artifact._schema import ArtifactSchema
from sqlspec.adapters.psycopg.adk.artifact._statements import ArtifactStatements
from sqlspec.adapters.psycopg.adk.memory._schema import MemorySchema
from sqlspec.adapters.psycopg.adk.memory._statements import MemoryStatements
from sqlspec.adapters.psycopg.adk.session._schema import SessionSchema, TableNames
from sqlspec.adapters.psycopg.adk.session._statements import LIST_ORDERS, SessionStatements

#: The distribution column of every distributed table.
DISTRIBUTION_COLUMN = "user_id"
#: The tables distributed by :data:`DISTRIBUTION_COLUMN`, all co-located.
DISTRIBUTED = frozenset(
    {
        "adk_sessions",
        "adk_events",
        "adk_user_states",
        "adk_memories",
        "adk_artifact_files",
        "adk_artifacts",
        "adk_artifact_blobs",
        "adk_artifact_chunks",
    }
)
#: The tables copied whole to every node.
REFERENCE = frozenset({"adk_app_states"})

ARTIFACT_SCHEMA = ArtifactSchema(
    "adk_artifacts", "adk_artifact_files", "adk_artifact_blobs", "adk_artifact_chunks"
)


def statements() -> Iterator[tuple[str, Statement[Any]]]:
    """Every statement the session, memory and artifact stores send, by name."""
    stores: dict[str, Any] = {
        "session": SessionStatements(TableNames()),
        "memory": MemoryStatements("adk_memories", vectors=True),
        "artifact": ArtifactStatements(ARTIFACT_SCHEMA),
    }
    for store, holder in stores.items():
        for name, value in vars(holder).items():
            if isinstance(value, Statement):
                yield f"{store}.{name}", value
            elif isinstance(value, tuple):
                for kind, statement in value:
                    yield f"{store}.{name}.{kind}", statement
    session = stores["session"]
    for after, newest in itertools.product((False, True), repeat=2):
        suffix = f"(after={after}, newest={newest})"
        yield f"session.get_session{suffix}", session.get_session(after=after, newest=newest)
        yield f"session.iter_events{suffix}", session.iter_events(after=after, newest=newest)
    for of_user, order_by, paged in itertools.product((False, True), LIST_ORDERS, (False, True)):
        yield (
            f"session.list_sessions(of_user={of_user}, order_by={order_by}, paged={paged})",
            session.list_sessions(of_user=of_user, order_by=order_by, paged=paged),
        )


_APP_LISTING = "lists an app's sessions across its users: every shard answers"
#: Statements that span users by design, and why; all other statements are hot.
MULTI_SHARD: dict[str, str] = {
    "session.count_prunable": "prune's dry run: idle sessions of every user",
    "session.prune": "deletes idle sessions of every user (see docs/scale-out.md: FOR UPDATE)",
    "session.count_expired": "doctor's count over every user",
    "session.events_partitioned": "prune's look at the catalog",
    "session.prunable_partitions": "prune by partition: a month of every user",
    "session.lock_month": "prune by partition: a month of every user",
    "session.delete_month": "prune by partition: a month of every user",
    "session.list_apps": "the CLI's listing of every app",
    "session.export.user_state": "export: whole tables",
    "session.export.session": "export: whole tables",
    "session.export.event": "export: whole tables",
    "session.import_staged": "import reads the coordinator's temporary staging table",
    "session.import_events": "import reads the coordinator's temporary staging table",
    "memory.prune": "deletes old memories of every user",
    "memory.count_prunable": "prune's dry run over every user",
    "memory.export.memory": "export: the whole table",
    "memory.import_staged": "import reads the coordinator's temporary staging table",
    "memory.count": "doctor's count over every user",
    "artifact.count_blobs": "doctor's count over every user",
    "artifact.prune_blobs": "sweeps contents no version of any user holds",
    "artifact.export.artifact_blob": "export: whole tables",
    "artifact.export.artifact_chunk": "export: whole tables",
    "artifact.export.artifact": "export: whole tables",
    "artifact.import_staged": "import reads the coordinator's temporary staging table",
    **{
        f"session.list_sessions(of_user=False, order_by={order_by}, paged={paged})": _APP_LISTING
        for order_by, paged in itertools.product(LIST_ORDERS, (False, True))
    },
}

_APP_STATE_WRITE = (
    "the variant for an app: delta upserts the reference table in the same statement: "
    "on Citus it writes every node (the _without_app variant, for every other call, does not)"
)
_SHARED_BLOBS = (
    "artifact content is kept once per SHA-256 across users: blobs and chunks need "
    "user_id in their key"
)
#: Hot statements that are not router-executable today, and what must change.
ROUTER_DIVERGENCES: dict[str, str] = {
    "session.create_session": _APP_STATE_WRITE,
    "session.append_event": _APP_STATE_WRITE,
    "memory.delete": "finds the memory by its key array alone: add user_id = %(user_id)s",
    "memory.hybrid_search": "joins the fused ids by key array alone: add m.user_id equality",
    "artifact.save": _SHARED_BLOBS,
    "artifact.save_staged": _SHARED_BLOBS,
    "artifact.load": _SHARED_BLOBS,
    "artifact.delete": _SHARED_BLOBS,
}
#: Tables whose keys do not hold the distribution column today, and what must change.
KEY_DIVERGENCES: dict[str, str] = {
    "adk_memories": "the primary key is the generated key array; it must be (user_id, key)",
    "adk_artifact_blobs": _SHARED_BLOBS,
    "adk_artifact_chunks": _SHARED_BLOBS,
    "adk_artifacts": "its foreign key to blobs is by SHA-256 alone",
}


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sbt]")


def parse(text: str) -> tuple[Any, dict[int, str]]:
    """A statement's tree, psycopg's named placeholders turned into ``$n``, and their names."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    (raw,) = parse_sql(_PLACEHOLDER.sub(number, text))
    return raw.stmt, {n: name for name, n in numbers.items()}


Term = tuple[Any, ...]


@dataclass
class Ref:
    """One table (or CTE, subquery, function) named in a FROM list or as a target."""

    index: int
    name: str
    kind: str


@dataclass
class Level:
    """One query level: the names its FROM list binds, and the CTEs it defines."""

    names: dict[str, Ref] = field(default_factory=dict)
    ctes: set[str] = field(default_factory=set)


class RouterCheck:
    """Walks one statement, joining the terms equalities tie, then judges each table in it."""

    def __init__(self, text: str) -> None:
        self.refs: list[Ref] = []
        self.parent: dict[Term, Term] = {}
        self.problems: list[str] = []
        tree, self.params = parse(text)
        self.query(tree, ())

    # -- equalities

    def find(self, term: Term) -> Term:
        while self.parent.get(term, term) != term:
            term = self.parent[term]
        return term

    def union(self, a: Term | None, b: Term | None) -> None:
        if a is not None and b is not None:
            self.parent[self.find(a)] = self.find(b)

    def term(self, node: Any, chain: tuple[Level, ...]) -> Term | None:
        if isinstance(node, ast.TypeCast):
            return self.term(node.arg, chain)
        if isinstance(node, ast.ParamRef):
            return ("param", self.params[node.number or 0])
        if not isinstance(node, ast.ColumnRef):
            return None
        parts = node.fields or ()
        fields = [f.sval for f in parts if isinstance(f, ast.String)]
        if len(fields) != len(parts):
            return None
        column = fields[-1]
        for level in reversed(chain):
            if len(fields) == 2 and fields[0] in level.names:
                return ("col", level.names[fields[0]].index, column)
            if len(fields) == 1 and level.names:
                refs = list(level.names.values())
                return ("col", refs[0].index, column) if len(refs) == 1 else None
        return None

    def equate(self, node: Any, chain: tuple[Level, ...]) -> None:
        """Tie the two sides of each ``=`` among the top-level AND-ed conditions."""
        if node is None:
            return
        if isinstance(node, ast.BoolExpr) and node.boolop == 0:  # AND_EXPR
            for arg in node.args or ():
                self.equate(arg, chain)
        elif (
            isinstance(node, ast.A_Expr)
            and node.kind == 0  # AEXPR_OP
            and [n.sval for n in node.name or ()] == ["="]
        ):
            self.union(self.term(node.lexpr, chain), self.term(node.rexpr, chain))

    # -- the tree

    def visit(self, node: Any, chain: tuple[Level, ...]) -> None:
        """Find the subqueries in an expression."""
        if isinstance(node, list | tuple):
            for item in node:
                self.visit(item, chain)
        elif isinstance(node, ast.SubLink):
            self.query(node.subselect, chain)
        elif isinstance(node, ast.Node):
            kind: Any = type(node)
            for name in kind.__slots__:
                self.visit(getattr(node, name, None), chain)

    def ref(self, name: str, chain: tuple[Level, ...], level: Level) -> Ref:
        if name in level.ctes or any(name in outer.ctes for outer in chain):
            kind = "derived"
        elif name in DISTRIBUTED:
            kind = "distributed"
        elif name in REFERENCE:
            kind = "reference"
        else:
            kind = "local"
        ref = Ref(len(self.refs), name, kind)
        self.refs.append(ref)
        return ref

    def derived(self, alias: Any, level: Level) -> None:
        """A subquery or function in a FROM list: its rows come from what it reads."""
        ref = Ref(len(self.refs), "", "derived")
        self.refs.append(ref)
        if alias is not None:
            level.names[alias.aliasname] = ref

    def bind(self, range_var: Any, chain: tuple[Level, ...], level: Level) -> Ref:
        ref = self.ref(range_var.relname, chain, level)
        alias = range_var.alias.aliasname if range_var.alias else range_var.relname
        level.names[alias] = ref
        return ref

    def with_clause(self, node: Any, chain: tuple[Level, ...], level: Level) -> None:
        if node is None:
            return
        for cte in node.ctes:
            self.query(cte.ctequery, (*chain, level))
            level.ctes.add(cte.ctename)

    def from_item(
        self, item: Any, chain: tuple[Level, ...], level: Level, quals: list[Any]
    ) -> None:
        if isinstance(item, ast.RangeVar):
            self.bind(item, chain, level)
        elif isinstance(item, ast.JoinExpr):
            self.from_item(item.larg, chain, level, quals)
            self.from_item(item.rarg, chain, level, quals)
            quals.append(item.quals)
        elif isinstance(item, ast.RangeSubselect):
            self.query(item.subquery, (*chain, level) if item.lateral else chain)
            self.derived(item.alias, level)
        elif isinstance(item, ast.RangeFunction):
            self.visit(item.functions, (*chain, level))
            self.derived(item.alias, level)

    def query(self, node: Any, chain: tuple[Level, ...]) -> Level:
        level = Level()
        self.with_clause(getattr(node, "withClause", None), chain, level)
        if isinstance(node, ast.SelectStmt):
            if node.op != SetOperation.SETOP_NONE:
                self.query(node.larg, (*chain, level))
                self.query(node.rarg, (*chain, level))
                return level
            quals: list[Any] = []
            for item in node.fromClause or ():
                self.from_item(item, chain, level, quals)
            inner = (*chain, level)
            for condition in (*quals, node.whereClause):
                self.equate(condition, inner)
            for part in (quals, node.whereClause, node.targetList, node.valuesLists):
                self.visit(part, inner)
            for part in (node.havingClause, node.sortClause, node.limitCount):
                self.visit(part, inner)
        elif isinstance(node, ast.InsertStmt):
            self.insert(node, chain, level)
        elif isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
            target = self.bind(node.relation, chain, level)
            self.written(target)
            quals = []
            extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
            for item in extra or ():
                self.from_item(item, chain, level, quals)
            inner = (*chain, level)
            for condition in (*quals, node.whereClause):
                self.equate(condition, inner)
            self.visit((quals, node.whereClause, node.returningClause), inner)
            if isinstance(node, ast.UpdateStmt):
                self.visit(node.targetList, inner)
        else:
            self.visit(node, (*chain, level))
        return level

    def insert(self, node: Any, chain: tuple[Level, ...], level: Level) -> None:
        target = self.bind(node.relation, chain, level)
        self.written(target)
        columns = [c.name for c in node.cols or ()]
        source = node.selectStmt
        inner = (*chain, level)
        if DISTRIBUTION_COLUMN in columns and source is not None:
            position = columns.index(DISTRIBUTION_COLUMN)
            column: Term = ("col", target.index, DISTRIBUTION_COLUMN)
            if source.valuesLists:
                for row in source.valuesLists:
                    self.union(column, self.term(row[position], inner))
                self.visit(source.valuesLists, inner)
            else:
                selected = self.query(source, inner)
                value = source.targetList[position].val
                self.union(column, self.term(value, (*inner, selected)))
        elif source is not None:
            self.query(source, inner)
        self.visit((node.onConflictClause, node.returningClause), inner)

    def written(self, target: Ref) -> None:
        if target.kind == "reference":
            self.problems.append(f"writes reference table {target.name} (every node's copy)")

    # -- the verdict

    def verdict(self) -> list[str]:
        """What keeps the statement from running on one worker; empty if nothing does."""
        problems = list(self.problems)
        pinned: set[str] = set()
        for ref in self.refs:
            if ref.kind == "local":
                problems.append(f"reads {ref.name}, which is on the coordinator only")
            if ref.kind != "distributed":
                continue
            root = self.find(("col", ref.index, DISTRIBUTION_COLUMN))
            params = {p for p in self.params.values() if self.find(("param", p)) == root}
            if not params:
                problems.append(f"{ref.name} is not filtered by equality on {DISTRIBUTION_COLUMN}")
            pinned |= params
        if len(pinned) > 1:
            problems.append(f"distributed tables pinned to different parameters: {sorted(pinned)}")
        return list(dict.fromkeys(problems))


def router_problems(text: str | bytes) -> list[str]:
    """Why a statement is not router-executable under the design; empty if it is."""
    return RouterCheck(text.decode() if isinstance(text, bytes) else text).verdict()


def key_problems(ddl: Iterable[str]) -> list[str]:
    """Keys and foreign keys of distributed tables that lack the distribution column."""
    problems = []
    for text in ddl:
        for raw in parse_sql(text):
            node: Any = raw.stmt
            if not isinstance(node, ast.CreateStmt):
                continue
            relation: Any = node.relation
            table: str = relation.relname
            elements = node.tableElts or ()
            columns = {e.colname for e in elements if isinstance(e, ast.ColumnDef)}
            constraints: list[tuple[list[str], ast.Constraint]] = []
            for element in elements:
                if isinstance(element, ast.ColumnDef):
                    for c in element.constraints or ():
                        constraints.append(([str(element.colname)], c))
                elif isinstance(element, ast.Constraint):
                    own = element.fk_attrs if element.contype == ConstrType.CONSTR_FOREIGN else None
                    keys = [str(k.sval) for k in (own or element.keys or ())]
                    constraints.append((keys, element))
            if table in DISTRIBUTED and DISTRIBUTION_COLUMN not in columns:
                problems.append(f"{table} has no {DISTRIBUTION_COLUMN} column")
            for keys, c in constraints:
                problems += _constraint_problems(table, keys, c)
    return list(dict.fromkeys(problems))


def _constraint_problems(table: str, keys: list[str], c: Any) -> list[str]:
    if c.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
        if table in DISTRIBUTED and DISTRIBUTION_COLUMN not in keys:
            return [f"{table}: key {keys} lacks {DISTRIBUTION_COLUMN}"]
    elif c.contype == ConstrType.CONSTR_FOREIGN:
        referenced = c.pktable.relname
        targets = [k.sval for k in c.pk_attrs or ()]
        if table in REFERENCE and referenced in DISTRIBUTED:
            return [f"{table}: a reference table cannot refer to {referenced}"]
        if table in DISTRIBUTED and referenced in DISTRIBUTED:
            pairs = list(zip(keys, targets, strict=True))
            if (DISTRIBUTION_COLUMN, DISTRIBUTION_COLUMN) not in pairs:
                return [f"{table}: foreign key {keys} -> {referenced} {targets} skips the shard"]
    return []


def ddl_of(schema: Any) -> dict[str, list[str]]:
    """The CREATE TABLE statements of a schema's migrations, by table."""
    tables: dict[str, list[str]] = {}
    for migration in schema.migrations.values():
        for statement in migration:
            text = statement.text.decode()
            for raw in parse_sql(text):
                node: Any = raw.stmt
                if isinstance(node, ast.CreateStmt):
                    relation: Any = node.relation
                    tables.setdefault(relation.relname, []).append(text)
    return tables


ALL = dict(statements())
HOT = sorted(name for name in ALL if name not in MULTI_SHARD)
TABLES = {
    **ddl_of(SessionSchema(TableNames())),
    **ddl_of(MemorySchema("adk_memories", 8)),
    **ddl_of(ARTIFACT_SCHEMA),
}


def _expected(name: str, divergences: dict[str, str]) -> Any:
    reason = divergences.get(name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", [_expected(n, ROUTER_DIVERGENCES) for n in HOT])
def test_hot_statement_is_router_executable(name: str) -> None:
    assert router_problems(ALL[name].text) == []


@pytest.mark.parametrize("table", [_expected(t, KEY_DIVERGENCES) for t in sorted(TABLES)])
def test_keys_hold_the_distribution_column(table: str) -> None:
    assert key_problems(TABLES[table]) == []


def test_every_table_has_a_place_in_the_design() -> None:
    assert set(TABLES) == DISTRIBUTED | REFERENCE


def test_the_lists_name_real_statements_and_tables() -> None:
    assert set(MULTI_SHARD) <= set(ALL)
    assert set(ROUTER_DIVERGENCES) <= set(HOT)
    assert set(KEY_DIVERGENCES) <= set(TABLES)


@pytest.mark.parametrize("name", sorted(MULTI_SHARD))
def test_listed_multi_shard_statement_does_span_users(name: str) -> None:
    assert router_problems(ALL[name].text) != []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SELECT * FROM adk_sessions WHERE app_name = %(app_name)s", "adk_sessions is not"),
        (
            "SELECT * FROM adk_sessions s JOIN adk_events e ON e.session_id = s.id "
            "WHERE s.user_id = %(user_id)s",
            "adk_events is not",
        ),
        (
            "SELECT * FROM adk_sessions s, adk_user_states u "
            "WHERE s.user_id = %(user_id)s AND u.user_id = %(other)s",
            "different parameters",
        ),
        (
            "SELECT * FROM adk_sessions WHERE user_id = %(user_id)s OR user_id = %(other)s",
            "adk_sessions is not",
        ),
        ("UPDATE adk_app_states SET state = '{}' WHERE app_name = %(app_name)s", "reference"),
        (
            "INSERT INTO adk_events (app_name, user_id, id) SELECT e.app_name, e.user_id, 'x' "
            "FROM adk_events e WHERE e.app_name = %(app_name)s",
            "adk_events is not",
        ),
    ],
)
def test_checker_rejects_a_statement_that_spans_shards(text: str, fragment: str) -> None:
    assert any(fragment in p for p in router_problems(text))


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM adk_sessions s JOIN adk_events e ON e.user_id = s.user_id "
        "LEFT JOIN adk_app_states a ON a.app_name = s.app_name WHERE s.user_id = %(user_id)s",
        "SELECT (SELECT count(*) FROM adk_events e WHERE e.user_id = s.user_id) "
        "FROM adk_sessions s WHERE s.user_id = %(user_id)s::text",
        "WITH n AS (INSERT INTO adk_sessions (id, app_name, user_id) "
        "VALUES ('a', 'b', %(user_id)s) RETURNING id) SELECT * FROM n",
    ],
)
def test_checker_accepts_a_statement_on_one_shard(text: str) -> None:
    assert router_problems(text) == []


def test_checker_rejects_keys_without_the_distribution_column() -> None:
    ddl = [
        "CREATE TABLE adk_sessions (user_id text, id text PRIMARY KEY)",
        "CREATE TABLE adk_events (user_id text, sid text, "
        "FOREIGN KEY (sid) REFERENCES adk_sessions (id))",
        "CREATE TABLE adk_app_states (app_name text, user_id text, "
        "FOREIGN KEY (user_id) REFERENCES adk_user_states (user_id))",
    ]
    assert key_problems(ddl) == [
        "adk_sessions: key ['id'] lacks user_id",
        "adk_events: foreign key ['sid'] -> adk_sessions ['id'] skips the shard",
        "adk_app_states: a reference table cannot refer to adk_user_states",
    ]
