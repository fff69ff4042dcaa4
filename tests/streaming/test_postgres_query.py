"""InteractiveQuery on PostgreSQL: a read-only role, the SQLite sessions' contract."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import psycopg
import pytest
import trio
from postgres_support import PostgresServer, postgres_server
from service_support import Served, running

from puregrpc.client import CallOptions, Channel, ChannelOptions, StreamStreamCall
from puregrpc_streaming.backends.postgres import PostgresDatabase, PostgresSettings
from puregrpc_streaming.backends.postgres_dataset import PostgresDataset
from puregrpc_streaming.backends.postgres_query import query_role_name
from puregrpc_streaming.identity import Identity
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["postgres_server"]

Call = StreamStreamCall[pb.QueryRequest, pb.QueryResponse]


def rss_mib() -> float:
    """This process's resident set size now, in MiB (Linux)."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


async def ask(call: Call, sql: str, max_rows: int = 0) -> tuple[list[object], pb.QueryResponse]:
    """Send ``sql``; (the rows, decoded, and the complete response)."""
    await call.send(pb.QueryRequest(query=sql, max_rows=max_rows))
    rows: list[object] = []
    with trio.fail_after(30):
        while (response := await call.receive()) is not None:
            if response.complete:
                return rows, response
            rows.append(json.loads(response.data))
    raise AssertionError("the query stream ended")


def on_postgres(served: Served) -> str:
    """The role the instance's queries log in as (asserting they run on PostgreSQL)."""
    dataset = served.running.backends.dataset
    assert isinstance(dataset, PostgresDataset) and dataset.query_credentials is not None
    return dataset.query_credentials.user


async def test_queries_read_the_shared_dataset_as_the_query_role(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url
    async with (
        running(tmp_path / "a", postgres_url=url) as a,
        running(tmp_path / "b", postgres_url=url) as b,
        a.stub.InteractiveQuery() as on_a,
        b.stub.InteractiveQuery() as on_b,
    ):
        assert on_postgres(a) == on_postgres(b) == query_role_name("postgres")
        rows, done = await ask(on_a, "SELECT id, category, data FROM dataset ORDER BY id LIMIT 3")
        assert done.error == "" and [r["id"] for r in rows] == [1, 2, 3]  # type: ignore[index]
        first = rows[0]
        assert isinstance(first, dict) and json.loads(first["data"])["name"] == "item-0000001"
        rows, done = await ask(on_a, "SELECT current_user AS who, sum(id) AS s FROM dataset")
        n = a.config.dataset_rows
        assert rows == [{"who": query_role_name("postgres"), "s": n * (n + 1) // 2}]
        # A row changed in the shared table is seen alike through A and B
        # (B's own SQLite copy has no such row).
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE dataset SET category = 'shared' WHERE id = 7")
        sql = "SELECT id FROM dataset WHERE category = 'shared'"
        seen_a, _ = await ask(on_a, sql)
        seen_b, _ = await ask(on_b, sql)
        assert seen_a == seen_b == [{"id": 7}]
        rows, done = await ask(on_b, "SELECT 1.5 AS x, now() > '2000-01-01' AS t, NULL AS z")
        assert rows == [{"x": 1.5, "t": True, "z": None}]


async def test_every_other_table_and_private_catalog_is_denied(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    denied = [
        ("SELECT count(*) FROM kv", "reading table 'kv'"),
        ("SELECT * FROM metrics", "reading table 'metrics'"),
        ("SELECT password FROM query_role", "reading table 'query_role'"),
        ("SELECT d.id FROM dataset d JOIN dataset_seed s ON true", "reading table 'dataset_seed'"),
        ("SELECT rolpassword FROM pg_authid", "reading table 'pg_authid'"),
        ("SELECT pg_read_file('/etc/passwd')", "calling function 'pg_read_file'"),
    ]
    async with (
        running(tmp_path, postgres_url=postgres_server.url) as served,
        served.stub.InteractiveQuery() as call,
    ):
        on_postgres(served)
        for sql, needle in denied:
            rows, done = await ask(call, sql)
            assert (rows, done.error_code) == ([], "PERMISSION_DENIED"), sql
            assert needle in done.error and "dataset table only" in done.error, done.error
        rows, done = await ask(call, "SELECT count(*) AS n FROM dataset")
        assert (rows, done.error) == ([{"n": served.config.dataset_rows}], "")


async def test_writes_are_refused_naming_the_statement(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    refused = [
        ("DELETE FROM dataset", "only SELECT statements are allowed, not DELETE"),
        ("update dataset SET value = 0", "not UPDATE"),
        ("INSERT INTO kv VALUES ('a', '', 1, false, 0)", "not INSERT"),
        ("DROP TABLE dataset", "not DROP TABLE"),
        ("CREATE TEMP TABLE t (x int)", "not CREATE TABLE"),
        (
            "WITH d AS (DELETE FROM dataset RETURNING id) SELECT * FROM d",
            "this one writes or changes the database",
        ),
        ("SELECT 1; DELETE FROM dataset", "one statement"),
        ("SELECT * INTO copy FROM dataset", "SELECT ... INTO"),
        ("SELECT nextval('metrics_id_seq')", "using sequence 'metrics_id_seq' is not allowed"),
        ("SELEC id FROM dataset", "syntax error"),
        ("   ", "empty query"),
    ]
    async with (
        running(tmp_path, postgres_url=postgres_server.url) as served,
        served.stub.InteractiveQuery() as call,
    ):
        on_postgres(served)
        for sql, needle in refused:
            rows, done = await ask(call, sql)
            assert rows == [] and needle in done.error, (sql, done.error)
            assert done.error_code in ("INVALID_ARGUMENT", "PERMISSION_DENIED"), sql
        rows, done = await ask(call, "SELECT count(*) AS n FROM dataset;")
        assert (rows, done.error) == ([{"n": served.config.dataset_rows}], "")
        # A setting a query changes is undone with its transaction.
        await ask(call, "SELECT set_config('default_transaction_read_only', 'off', false)")
        rows, _ = await ask(call, "SELECT current_setting('transaction_read_only') AS ro")
        assert rows == [{"ro": "on"}]
    with psycopg.connect(postgres_server.url) as conn:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (0,)


async def test_the_time_limit_counts_and_cannot_be_lifted(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with (
        running(tmp_path, postgres_url=postgres_server.url, query_timeout=0.3) as served,
        served.stub.InteractiveQuery() as call,
    ):
        on_postgres(served)
        started = trio.current_time()
        rows, done = await ask(call, "SELECT pg_sleep(10)")
        assert (rows, done.error_code) == ([], "DEADLINE_EXCEEDED")
        assert "time limit of 0.3 s" in done.error
        assert trio.current_time() - started < 5
        # Lifting the timeout lasts no longer than the query that does it.
        rows, done = await ask(call, "SELECT set_config('statement_timeout', '0', false) AS t")
        assert (rows, done.error) == ([{"t": "0"}], "")
        rows, done = await ask(call, "SELECT pg_sleep(10)")
        assert done.error_code == "DEADLINE_EXCEEDED"
        # A session advisory lock taken by a query is released after it.
        await ask(call, "SELECT pg_advisory_lock(42) IS NULL AS x")
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            held = conn.execute("SELECT pg_try_advisory_lock(42)").fetchone()
        assert held == (True,)
        rows, done = await ask(call, "SELECT 41 + 1 AS answer")
        assert (rows, done.error) == ([{"answer": 42}], "")


async def test_oversized_rows_are_errors_and_truncation_is_sent(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with (
        running(tmp_path, postgres_url=postgres_server.url) as served,
        served.stub.InteractiveQuery() as call,
    ):
        on_postgres(served)
        start = rss_mib()
        rows, done = await ask(call, "SELECT repeat('x', 30000000) AS b FROM dataset LIMIT 3")
        grown = rss_mib() - start
        assert (rows, done.error_code) == ([], "RESOURCE_EXHAUSTED")
        assert "row 1 is 28.6 MiB as text, more than the limit of 1.0 MiB per row" in done.error
        assert grown < 20, f"RSS grew by {grown:.0f} MiB"
        # Within the fetch guard, but over the limit as JSON; rows before it were sent.
        rows, done = await ask(
            call,
            "SELECT id, repeat('y', (100 + (id / 3) * 1200000)::int) AS v FROM dataset ORDER BY id",
        )
        assert (len(rows), done.error_code) == (2, "RESOURCE_EXHAUSTED"), done.error
        assert "row 3 is 1.1 MiB as JSON, more than the limit of 1.0 MiB per row" in done.error
        rows, done = await ask(call, "SELECT id FROM dataset ORDER BY id", max_rows=7)
        assert (rows, done.truncated) == ([{"id": i} for i in range(1, 8)], True)
        rows, done = await ask(call, "SELECT id FROM dataset WHERE id <= 7", max_rows=7)
        assert (len(rows), done.truncated, done.error) == (7, False, "")
        rows, done = await ask(call, "SELECT id FROM dataset", max_rows=1000)
        assert (len(rows), done.truncated) == (1000, True)


async def test_an_admin_reads_every_table_read_only(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    tokens = {"root-token-012345678": Identity(user_id="root", roles=frozenset({"admin"}))}
    metadata = [("authorization", "Bearer root-token-012345678")]
    async with running(tmp_path, postgres_url=postgres_server.url, tokens=tokens) as served:
        on_postgres(served)
        options = ChannelOptions(call_defaults=CallOptions(metadata=metadata))
        async with (
            Channel(served.address, options=options) as channel,
            StreamingServiceStub(channel).InteractiveQuery() as call,
        ):
            rows, done = await ask(call, "SELECT count(*) AS n FROM kv")
            assert (rows, done.error) == ([{"n": 0}], "")
            rows, done = await ask(call, "DELETE FROM kv")
            assert done.error_code == "INVALID_ARGUMENT" and "not DELETE" in done.error


async def test_a_query_url_that_reads_more_is_refused(postgres_server: PostgresServer) -> None:
    # The test cluster's own user is a superuser: not a query role.
    db = PostgresDatabase(PostgresSettings(url=postgres_server.url, query_url=postgres_server.url))
    await db.open()
    dataset = PostgresDataset(db)
    await dataset.ensure_seeded(10)
    with pytest.raises(ValueError, match="is a superuser"):
        await dataset.enable_queries()
    await db.close()


async def test_without_the_right_to_create_roles_the_operators_role_is_used(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("CREATE ROLE app LOGIN")
        conn.execute("GRANT CREATE ON SCHEMA public TO app")
    app_url = postgres_server.url.replace("puregrpc@", "app@")
    # Not allowed to create the query role, and none given: the SQLite copy answers.
    async with running(tmp_path / "a", postgres_url=app_url) as served:
        dataset = served.running.backends.dataset
        assert isinstance(dataset, PostgresDataset) and dataset.query_credentials is None
        async with served.stub.InteractiveQuery() as call:
            rows, done = await ask(call, "SELECT count(*) AS n FROM dataset")
        assert (rows, done.error) == ([{"n": served.config.dataset_rows}], "")
    # The operator's role, set up as docs/postgres.md says.
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN")
        conn.execute("GRANT SELECT ON dataset TO reader")
    reader_url = postgres_server.url.replace("puregrpc@", "reader@")
    async with (
        running(tmp_path / "b", postgres_url=app_url, postgres_query_url=reader_url) as served,
        served.stub.InteractiveQuery() as call,
    ):
        rows, done = await ask(call, "SELECT current_user AS who, count(*) AS n FROM dataset")
        assert (rows, done.error) == ([{"who": "reader", "n": served.config.dataset_rows}], "")
        rows, done = await ask(call, "SELECT * FROM kv")
        assert done.error_code == "PERMISSION_DENIED" and "'kv'" in done.error


async def test_a_cancelled_query_stops_its_statement_and_frees_its_thread(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    # A time limit longer than the test: only the cancel request can end the statement.
    async with running(
        tmp_path, postgres_url=postgres_server.url, query_timeout=60.0, query_threads=1
    ) as served:
        on_postgres(served)
        limiter = served.running.backends.dataset.query_limiter
        assert limiter.total_tokens == 1

        def sleeping() -> int:
            with psycopg.connect(postgres_server.url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE state = 'active' AND wait_event = 'PgSleep'"
                ).fetchone()
            assert row is not None
            return int(row[0])

        for _ in range(3):  # more cancelled statements than threads
            with trio.CancelScope() as scope:
                async with served.stub.InteractiveQuery() as call:
                    await call.send(pb.QueryRequest(query="SELECT pg_sleep(60)"))
                    with trio.fail_after(20):
                        # Polled: the server's counter and PostgreSQL's view have no event.
                        while True:
                            if limiter.borrowed_tokens and await trio.to_thread.run_sync(sleeping):
                                break
                            await trio.sleep(0.05)
                    scope.cancel()
            with trio.fail_after(20):
                while limiter.borrowed_tokens:  # noqa: ASYNC110 - a counter of the server
                    await trio.sleep(0.01)
            assert await trio.to_thread.run_sync(sleeping) == 0
        async with served.stub.InteractiveQuery() as call:
            rows, done = await ask(call, "SELECT 41 + 1 AS answer")
        assert (rows, done.error) == ([{"answer": 42}], "")
