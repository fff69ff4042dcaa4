"""puregrpc's client and grpcio's against the same hostile servers, side by side.

    .venv/bin/python bench/hostile_servers_grpcio.py [--deadline 2] \
        [--write docs/hostile-servers.md]

The servers are the raw-frame scripts of :mod:`puregrpc.testing.hostile_cases`
(the ones ``tests/client/test_hostile_servers.py`` runs), each served on
127.0.0.1 by :func:`puregrpc.testing.hostile.hostile_server`. For every case
one unary call with a deadline is made from each client on a fresh channel:
puregrpc's ``Channel`` (in this trio process) and grpcio's synchronous
channel (in a worker thread, so the scripted server keeps running). Each cell
of the table says the status code, the first words of the details and how
long the call took. The legal-but-unusual cases must succeed (``OK`` and the
response the script sent), and, as in the tests, a second call on the same
channel must too (the script's later connections are well behaved).

Every call is bounded by its deadline (plus a grace for grpcio's thread),
and the number of calls by the number of cases: the script ends by itself.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import trio

from puregrpc import RpcError
from puregrpc.client import Channel
from puregrpc.testing.hostile import RawPeer, Script, hostile_server, well_behaved
from puregrpc.testing.hostile_cases import HOSTILE, INVALID_PROTOBUF, LEGAL, UNARY
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoStub

#: How many characters of a status message a table cell keeps.
DETAILS = 90


@dataclass(frozen=True)
class Outcome:
    """How one call ended."""

    code: str
    details: str
    seconds: float
    #: For a legal case: the second call on the same channel succeeded too.
    again: bool | None = None

    def cell(self) -> str:
        """A markdown table cell: code, details, seconds."""
        details = self.details.replace("|", "\\|").replace("\n", " ")
        if len(details) > DETAILS:
            details = details[: DETAILS - 3] + "..."
        again = (
            "" if self.again is None else ("; 2nd call OK" if self.again else "; 2nd call fails")
        )
        text = f"{self.code} ({self.seconds:.2f} s{again})"
        return f"{text}: {details}" if details else text


@dataclass(frozen=True)
class Case:
    """One row: a script, what the specs give, how the response is decoded."""

    name: str
    script: Script
    expected: str
    #: Decode responses as the Echo service's reply (else raw bytes).
    protobuf: bool = False
    #: The script is legal: a second call on the channel must succeed too.
    legal: bool = False
    #: The request the call sends (raw bytes).
    request: bytes = b"hello"


def _cases() -> list[Case]:
    cases = [Case(c.name, c.script, c.code.name, request=c.request) for c in HOSTILE]
    cases.append(Case("response not valid protobuf", INVALID_PROTOBUF, "INTERNAL", protobuf=True))
    for legal in LEGAL:

        async def first_then_good(peer: RawPeer, index: int, script: Script = legal.script) -> None:
            await (script if index == 0 else well_behaved)(peer, index)

        expected = f"OK {legal.expected!r}"
        cases.append(Case(legal.name, first_then_good, expected, legal=True))
    return cases


async def _puregrpc_call(case: Case, port: int, deadline: float) -> Outcome:
    start = time.monotonic()
    async with Channel(f"127.0.0.1:{port}") as channel:
        try:
            with trio.fail_after(deadline + 5):
                if case.protobuf:
                    request = echo_pb2.EchoRequest(message="hi")
                    reply: object = await EchoStub(channel).Unary(request, timeout=deadline)
                else:
                    raw: bytes = await channel.unary_unary(UNARY, case.request, timeout=deadline)
                    reply = raw
        except RpcError as error:
            return Outcome(error.code.name, error.details, time.monotonic() - start)
        except trio.TooSlowError:
            return Outcome("HANG", "no end within the deadline + 5 s", time.monotonic() - start)
        seconds = time.monotonic() - start
        again = None
        if case.legal:
            try:
                again = await channel.unary_unary(UNARY, b"again", timeout=deadline) == b"again"
            except RpcError:
                again = False
        return Outcome("OK", repr(reply), seconds, again)


def _grpcio_call(case: Case, port: int, deadline: float) -> Outcome:
    decode: Callable[[bytes], object] | None = (
        echo_pb2.EchoReply.FromString if case.protobuf else None
    )
    encode = echo_pb2.EchoRequest.SerializeToString if case.protobuf else None
    request: object = echo_pb2.EchoRequest(message="hi") if case.protobuf else case.request
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        method = "/puregrpc.testing.Echo/Unary" if case.protobuf else UNARY.path
        call = channel.unary_unary(method, request_serializer=encode, response_deserializer=decode)
        start = time.monotonic()
        try:
            reply = call(request, timeout=deadline)
        except grpc.RpcError as error:
            code = error.code()
            details = error.details() or ""
            return Outcome(code.name, details, time.monotonic() - start)
        seconds = time.monotonic() - start
        again = None
        if case.legal:
            try:
                again = call(b"again", timeout=deadline) == b"again"
            except grpc.RpcError:
                again = False
        return Outcome("OK", repr(reply), seconds, again)
    finally:
        channel.close()


async def _run(case: Case, deadline: float) -> tuple[Outcome, Outcome]:
    async with hostile_server(case.script) as port:
        ours = await _puregrpc_call(case, port, deadline)
    async with hostile_server(case.script) as port:
        with trio.move_on_after(deadline + 10):
            theirs = await trio.to_thread.run_sync(
                _grpcio_call, case, port, deadline, abandon_on_cancel=True
            )
            return ours, theirs
    return ours, Outcome("HANG", "no end within the deadline + 10 s", deadline + 10)


def _table(rows: list[tuple[Case, Outcome, Outcome]]) -> str:
    lines = [
        f"| case | the tests expect | puregrpc's client | grpcio's client ({grpc.__version__}) |",
        "|---|---|---|---|",
    ]
    for case, ours, theirs in rows:
        lines.append(f"| {case.name} | {case.expected} | {ours.cell()} | {theirs.cell()} |")
    return "\n".join(lines) + "\n"


async def _main(args: argparse.Namespace) -> str:
    rows = []
    for case in _cases():
        ours, theirs = await _run(case, args.deadline)
        print(
            f"{case.name}: puregrpc {ours.code} in {ours.seconds:.2f} s, "
            f"grpcio {theirs.code} in {theirs.seconds:.2f} s",
            flush=True,
        )
        rows.append((case, ours, theirs))
    return _table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deadline", type=float, default=2.0, help="each call's, in seconds")
    parser.add_argument("--write", type=Path, help="replace the table in this markdown file")
    args = parser.parse_args()
    table = trio.run(_main, args)
    print()
    print(table)
    if args.write:
        _write(args.write, table)
    return 0


#: The markers between which ``--write`` puts the table.
BEGIN, END = "<!-- table: begin -->\n", "<!-- table: end -->\n"


def _write(path: Path, table: str) -> None:
    text = path.read_text()
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    path.write_text(before + BEGIN + table + END + after)


if __name__ == "__main__":
    raise SystemExit(main())
