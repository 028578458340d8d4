"""Fuzzing: queries and mutations generated from the live schema (hypothesis-graphql),
sent with a valid token to a real server process on PostgreSQL.

    python -m prove.fuzz                         # full: 3,000 operations (valid + invalid)
    python -m prove.fuzz --examples 150 --seed 1 # what `make test` runs

Valid documents (Mode.POSITIVE) exercise the resolvers with arbitrary arguments; invalid
ones (Mode.NEGATIVE: wrong types, missing arguments) exercise the validation path. The
contract: no HTTP 5xx, no INTERNAL_SERVER_ERROR, every error carries a code. Prints the
operations sent, HTTP statuses and codes, and the offending documents if any.
"""

from __future__ import annotations

import argparse
import asyncio
import string
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import graphql
import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from prove.common import ServerProcess, drop_database, fresh_database, outcome_of, token


@dataclass
class FuzzReport:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [
            f"fuzz: {self.sent} operations, HTTP {dict(sorted(self.statuses.items()))}",
            f"  codes {dict(self.codes.most_common())}",
            f"  contract violations: {len(self.failures)}",
        ]
        for document, outcome, body in self.failures[:5]:
            lines.append(f"    {outcome}: {document[:300]!r} -> {body[:300]}")
        return "\n".join(lines)


def _scalars() -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    stamp = st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda moment: graphql.StringValueNode(value=moment.isoformat()))
    words = st.text(string.ascii_letters + string.digits, max_size=20)
    json_value = st.one_of(
        words.map(lambda word: graphql.StringValueNode(value=word)),
        st.integers(-1000, 1000).map(lambda n: graphql.IntValueNode(value=str(n))),
        st.booleans().map(lambda b: graphql.BooleanValueNode(value=b)),
    )
    return {"DateTime": stamp, "JSON": json_value}


async def fetch_schema(base_url: str, auth: str) -> graphql.GraphQLSchema:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={"query": graphql.get_introspection_query()},
            headers={"Authorization": f"Bearer {auth}"},
        )
    return graphql.build_client_schema(response.json()["data"])


def fuzz_server(
    base_url: str, auth: str, schema: graphql.GraphQLSchema, examples: int, seed: int
) -> FuzzReport:
    report = FuzzReport()
    strategy = st.one_of(
        from_schema(schema, custom_scalars=_scalars(), mode=Mode.POSITIVE),
        from_schema(schema, custom_scalars=_scalars(), mode=Mode.NEGATIVE),
    )
    with httpx.Client(base_url=base_url, timeout=30) as http:

        @hypothesis_seed(seed)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        @given(strategy)
        def one(document: Any) -> None:
            text = str(document)
            report.sent += 1
            try:
                response = http.post(
                    "/graphql",
                    json={"query": text},
                    headers={"Authorization": f"Bearer {auth}"},
                )
            except httpx.TransportError as error:
                report.failures.append((text, "TRANSPORT_ERROR", repr(error)))
                return
            report.statuses[response.status_code] += 1
            outcome, payload = outcome_of(response)
            for entry in (payload or {}).get("errors") or []:
                code = (entry.get("extensions") or {}).get("code", "NO_CODE")
                report.codes[code] += 1
                if code in ("INTERNAL_SERVER_ERROR", "NO_CODE"):
                    report.failures.append((text, code, response.text))
            if response.status_code >= 500 or outcome.startswith("HTTP_5"):
                report.failures.append((text, f"HTTP_{response.status_code}", response.text))

        one()
    return report


async def run_fuzz(examples: int, seed: int) -> FuzzReport:
    url = await fresh_database()
    try:
        async with ServerProcess(url) as server:
            auth = token(f"fuzz-{uuid.uuid4().hex[:8]}")
            schema = await fetch_schema(server.url, auth)
            return await asyncio.to_thread(fuzz_server, server.url, auth, schema, examples, seed)
    finally:
        await drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description="fuzz the live schema")
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(run_fuzz(args.examples, args.seed))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
