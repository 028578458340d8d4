"""Statements built once and run by asyncpg itself on a direct PostgreSQL connection.

SQLAlchemy's execution of one statement (the compiled-cache lookup, the execution
context, the cursor adapter, the result) costs 250 to 350 µs of CPU on the bench machine,
more than the statement's round trip; asyncpg alone, under 100 µs (bench/RESULTS.md).
A statement on a hot path (a list page, the writes of a turn) is built once (`Kept`),
compiled once per dialect, and run:
- by asyncpg on a direct PostgreSQL connection (engines marked `DIRECT`) when nobody
  observes statements through SQLAlchemy's events (tracing, tests counting them), in the
  session's transaction (begun with the driver's own BEGIN, as SQLAlchemy would begin it)
  or in autocommit;
- through SQLAlchemy Core otherwise: SQLite, behind a transaction pooler (its unique
  statement names), traced.
Both give the same rows (tuples in the statement's column order, values through the
columns' types) and the same errors (SQLAlchemy's `IntegrityError`, `DBAPIError`, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import bindparam, exc, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable
from sqlalchemy.util.concurrency import greenlet_spawn

#: engine execution option: connections go straight to PostgreSQL (no transaction
#: pooler in between), so asyncpg may run statements itself (db/engine.py sets it)
DIRECT = "taskchat_direct"

_Model = TypeVar("_Model")
Rows = Sequence[Sequence[Any]]
#: reads a kept statement's rows: `rows` on a session, or `lone_rows` on an engine
RowReader = Callable[["Kept", dict[str, Any]], Awaitable[Rows]]


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A statement as asyncpg runs it: its SQL, each `$n`'s bind name and processor,
    the values the statement binds itself (a `limit(1)`), the result processors."""

    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    fixed: dict[str, Any]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]


@dataclass(slots=True)
class Kept:
    """A statement built once, and its asyncpg form once it has run on PostgreSQL
    (`None` there: no asyncpg form fits it, it always goes through SQLAlchemy)."""

    statement: Executable
    driver: _DriverStatement | None = None
    driver_compiled: bool = False

    def __post_init__(self) -> None:
        # a statement that cannot compile fails where it is built, not on first use
        self.statement.compile()  # type: ignore[attr-defined]


def _driver_statement(stmt: Executable, dialect: Dialect) -> _DriverStatement | None:
    compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
    if (
        compiled.positiontup is None
        or compiled.literal_execute_params
        or compiled.post_compile_params
    ):
        return None
    processors = compiled._bind_processors
    binds: list[tuple[str, Callable[[Any], Any] | None]] = []
    for name in compiled.positiontup:
        processor = processors.get(name)
        if processor is not None and not callable(processor):
            return None  # a tuple's processors: not among ours
        binds.append((name, processor))
    columns = getattr(stmt, "exported_columns", ())
    results = tuple(
        (index, processor)
        for index, column in enumerate(columns)
        if (processor := column.type._cached_result_processor(dialect, None)) is not None
    )
    fixed = {
        name: value
        for name, value in compiled.construct_params(_check=False).items()
        if not compiled.binds[name].required
    }
    return _DriverStatement(str(compiled), tuple(binds), fixed, results)


def may_run(connection: AsyncConnection) -> bool:
    """PostgreSQL without a pooler in between, and nobody observing statements through
    SQLAlchemy's events: they would miss the ones asyncpg runs."""
    sync = connection.sync_connection
    return sync is not None and _may_run_on(sync)


def _may_run_on(sync: Connection) -> bool:
    if sync.dialect.name != "postgresql":
        return False
    return _unobserved_direct(sync.dispatch, sync.get_execution_options())


def _unobserved_direct(dispatch: Any, options: Mapping[str, Any]) -> bool:
    if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
        return False
    return bool(options.get(DIRECT, False))


def _driver_form(kept: Kept, sync: Connection) -> _DriverStatement | None:
    if not _may_run_on(sync):
        return None
    return _compiled_for(kept, sync.dialect)


def _compiled_for(kept: Kept, dialect: Dialect) -> _DriverStatement | None:
    if not kept.driver_compiled:
        kept.driver = _driver_statement(kept.statement, dialect)
        kept.driver_compiled = True
    return kept.driver


def _arguments(statement: _DriverStatement, values: dict[str, Any]) -> list[Any]:
    given = {**statement.fixed, **values} if statement.fixed else values
    return [
        given[name] if processor is None else processor(given[name])
        for name, processor in statement.binds
    ]


def _processed(statement: _DriverStatement, records: list[Any]) -> list[Sequence[Any]]:
    if not statement.results:
        return records
    rows: list[Sequence[Any]] = []
    for record in records:
        row = list(record)
        for index, processor in statement.results:
            value = row[index]
            if value is not None:
                row[index] = processor(value)
        rows.append(row)
    return rows


async def _on_driver(
    sync: Connection,
    statement: _DriverStatement,
    arguments: list[Any] | list[list[Any]],
    many: bool,
) -> list[Any]:
    """The statement on the connection's asyncpg connection, in the transaction
    SQLAlchemy began (its BEGIN sent now if it was not yet, as SQLAlchemy's adapter
    would before its first statement). asyncpg's errors become SQLAlchemy's."""
    raw = sync.connection
    adapter: Any = raw.dbapi_connection
    driver = raw.driver_connection
    assert adapter is not None
    assert driver is not None
    async with adapter._execute_mutex:
        try:
            if adapter._transaction is None:
                await adapter._start_transaction()
            if many:
                await driver.executemany(statement.sql, arguments)
                return []
            records: list[Any] = await driver.fetch(statement.sql, *arguments)
            return records
        except Exception as error:
            raise await _translated(sync, adapter, statement.sql, error) from None


async def _translated(sync: Connection, adapter: Any, sql: str, error: Exception) -> Exception:
    """The error as SQLAlchemy's usual path raises it; a dropped connection is
    invalidated (the pool replaces it)."""
    translated, dbapi_error = _as_sqlalchemy(sync.dialect, adapter, sql, error)
    if isinstance(translated, exc.DBAPIError) and translated.connection_invalidated:
        await greenlet_spawn(sync.invalidate, dbapi_error)
    return translated


def _as_sqlalchemy(
    dialect: Dialect, adapter: Any, sql: str, error: Exception
) -> tuple[Exception, Exception]:
    """The error as SQLAlchemy's usual path raises it (`connection_invalidated` when the
    connection dropped), and the DB-API error under it."""
    dbapi_error: Exception = error
    if not isinstance(error, dialect.loaded_dbapi.Error):
        try:
            adapter._handle_exception(error)
        except Exception as translated:
            dbapi_error = translated
    if not isinstance(dbapi_error, dialect.loaded_dbapi.Error):
        return error, error
    disconnected = dialect.is_disconnect(dbapi_error, adapter, None)
    wrapped = exc.DBAPIError.instance(
        sql,
        None,
        dbapi_error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=disconnected,
        dialect=dialect,
    )
    wrapped.__cause__ = error
    return wrapped, dbapi_error


async def _driver_rows(sync: Connection | None, kept: Kept, values: dict[str, Any]) -> Rows | None:
    """The statement's rows from asyncpg on `sync`; `None` where asyncpg may not run it."""
    statement = None if sync is None else _driver_form(kept, sync)
    if statement is None:
        return None
    assert sync is not None
    records = await _on_driver(sync, statement, _arguments(statement, values), False)
    return _processed(statement, records)


async def rows_on(connection: AsyncConnection, kept: Kept, values: dict[str, Any]) -> Rows:
    found = await _driver_rows(connection.sync_connection, kept, values)
    if found is not None:
        return found
    result = await connection.execute(kept.statement, values)
    return result.all() if result.returns_rows else []


def held_connection(session: AsyncSession) -> Connection | None:
    """The connection the session's transaction (or savepoint) already holds, found
    without `session.connection()`: that costs a greenlet switch and a proxy lookup (~15
    µs) for what needs no IO once the transaction has its connection. `None` before it
    has one (or when it is not active): then `session.connection()` gets it, as usual."""
    sync_session = session.sync_session
    transaction = sync_session._transaction
    bind = sync_session.bind
    if transaction is None or bind is None or not transaction.is_active:
        return None
    entry = transaction._connections.get(bind)
    return None if entry is None else entry[0]


async def rows(session: AsyncSession, kept: Kept, values: dict[str, Any]) -> Rows:
    """The statement's rows, in the session's transaction (Core rows: no ORM)."""
    found = await _driver_rows(held_connection(session), kept, values)
    if found is not None:
        return found
    return await rows_on(await session.connection(), kept, values)


async def first(session: AsyncSession, kept: Kept, values: dict[str, Any]) -> Sequence[Any] | None:
    found = await rows(session, kept, values)
    return found[0] if found else None


async def scalar(session: AsyncSession, kept: Kept, values: dict[str, Any]) -> Any:
    row = await first(session, kept, values)
    return None if row is None else row[0]


async def execute(session: AsyncSession, kept: Kept, values: dict[str, Any]) -> None:
    await rows(session, kept, values)


async def lone_rows(engine: AsyncEngine, kept: Kept, values: dict[str, Any]) -> Rows:
    """The statement's rows on a pooled connection of its own, outside any session: the
    read of a request that reads nothing else (a compiled page). On direct PostgreSQL
    (unobserved) it is the pool's checkout, asyncpg in autocommit and the checkin: about
    110 µs of CPU on the bench machine where a session's read (the session, its
    connection, its close) takes about 280. A connection the server dropped is replaced
    and the read runs once more, as `Context.read` does. Elsewhere: one connection
    through SQLAlchemy Core, its transaction rolled back at the end (SQLite; behind a
    transaction pooler, where a statement outside a transaction may be prepared on one
    server connection and run on another)."""
    dialect, sync = engine.dialect, engine.sync_engine
    direct = dialect.name == "postgresql" and _unobserved_direct(
        sync.dispatch, sync.get_execution_options()
    )
    statement = _compiled_for(kept, dialect) if direct else None
    if statement is None:
        async with engine.connect() as connection:
            return await rows_on(connection, kept, values)
    arguments = _arguments(statement, values)
    for attempt in (1, 2):
        raw = await engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            records = await driver.fetch(statement.sql, *arguments)
        except Exception as error:
            adapter = raw.dbapi_connection
            translated, dbapi_error = _as_sqlalchemy(dialect, adapter, statement.sql, error)
            if isinstance(translated, exc.DBAPIError) and translated.connection_invalidated:
                await greenlet_spawn(raw.invalidate, dbapi_error)
                if attempt == 1:
                    continue
            raise translated from None
        finally:
            # back to the pool (nothing to roll back: no transaction was begun); after
            # `invalidate` it only lets go of the closed connection
            raw.close()
        return _processed(statement, records)
    raise AssertionError("unreachable")


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine, begin: str) -> AsyncIterator[None]:
    """A transaction of its own on a pooled asyncpg connection, outside SQLAlchemy's
    transaction handling: `begin` (a simple query that starts with `BEGIN`, written by
    us, no parameters) takes one round trip, the `ROLLBACK` at the end one more. Errors
    of `begin` are asyncpg's, raised after the transaction is rolled back. A pooled
    connection the server dropped is replaced and `begin` sent once more; one left in
    doubt (cancelled mid-statement, a failed rollback) is closed, not pooled."""
    for attempt in (1, 2):
        raw = await engine.raw_connection()
        connection = raw.driver_connection
        assert connection is not None
        try:
            await connection.execute(begin)
        except asyncpg.PostgresError:
            await _end_raw(raw, connection)
            raise
        except BaseException as error:
            dropped = isinstance(error, Exception) and _dropped(engine, raw, begin, error)
            await _discard(raw, error)
            if dropped and attempt == 1:
                continue
            raise
        break
    try:
        yield
    finally:
        await asyncio.shield(_end_raw(raw, connection))


async def _end_raw(raw: Any, connection: Any) -> None:
    """Rolled back and pooled; closed instead if that fails (the server then ends the
    transaction, and any lock it held, with the session)."""
    try:
        await connection.execute("ROLLBACK")
    except Exception as error:
        await _discard(raw, error)
        return
    except BaseException as error:
        await _discard(raw, error)
        raise
    raw.close()  # back to the pool, with no transaction


async def _discard(raw: Any, error: BaseException) -> None:
    await greenlet_spawn(raw.invalidate, error if isinstance(error, Exception) else None)
    raw.close()


def _dropped(engine: AsyncEngine, raw: Any, sql: str, error: Exception) -> bool:
    translated, _ = _as_sqlalchemy(engine.dialect, raw.dbapi_connection, sql, error)
    return isinstance(translated, exc.DBAPIError) and translated.connection_invalidated


async def execute_many(session: AsyncSession, kept: Kept, many: Sequence[dict[str, Any]]) -> None:
    """One statement for every set of values (asyncpg pipelines them: one round trip)."""
    if not many:
        return
    connection = await session.connection()
    sync = connection.sync_connection
    statement = None if sync is None else _driver_form(kept, sync)
    if statement is not None:
        assert sync is not None
        await _on_driver(sync, statement, [_arguments(statement, v) for v in many], True)
        return
    await connection.execute(kept.statement, list(many))


def bound(column: Any, prefix: str = "b_") -> Any:
    """A bind parameter for `column`'s new value: named `b_<key>` (a bind named as its
    column clashes with the column in an INSERT or UPDATE), typed as the column. Another
    `prefix` keeps two statements' binds apart when one statement holds both."""
    return bindparam(f"{prefix}{column.key}", type_=column.type)


class Loader(Generic[_Model]):
    """The columns of a model's table, and rows of them (in that order) made instances of
    the model, as the ORM would have loaded them, for the cost of a dict update."""

    __slots__ = ("_identity", "_new", "_primary", "columns", "keys")

    def __init__(self, model: type[_Model]) -> None:
        mapper = sa_inspect(model)
        self.columns: tuple[Any, ...] = tuple(mapper.local_table.columns)
        self.keys: tuple[str, ...] = tuple(
            mapper.get_property_by_column(column).key for column in self.columns
        )
        self._new = mapper.class_manager.new_instance
        self._identity = mapper.identity_key_from_primary_key
        self._primary = tuple(self.columns.index(column) for column in mapper.primary_key)

    def insert(self) -> Kept:
        """An INSERT of one row, every column bound (`b_<column>`): see `values_of`."""
        table = self.columns[0].table
        return Kept(insert(table).values({column: bound(column) for column in self.columns}))

    def values_of(self, instance: _Model, prefix: str = "b_") -> dict[str, Any]:
        """What `insert` binds for `instance`, which has every column attribute set (the
        columns' defaults are not applied here: an unset attribute is NULL); another
        `prefix`, for binds made by `bound(column, prefix)`."""
        return {
            f"{prefix}{column.key}": getattr(instance, key)
            for column, key in zip(self.columns, self.keys, strict=True)
        }

    def __call__(self, row: Sequence[Any]) -> _Model:
        """A transient instance (no session holds it) with every column attribute set."""
        instance: _Model = self._new()
        instance.__dict__.update(zip(self.keys, row, strict=True))
        return instance

    def refreshed(self, session: AsyncSession, row: Sequence[Any]) -> _Model:
        """As a call, except that an instance the session already holds for the row is
        brought up to date and returned instead (what `populate_existing` does): a row
        changed through the driver leaves no stale copy in the session."""
        key = self._identity([row[index] for index in self._primary])
        held: _Model | None = session.sync_session.identity_map.get(key)
        if held is None:
            return self(row)
        for attribute, value in zip(self.keys, row, strict=True):
            set_committed_value(held, attribute, value)
        return held
