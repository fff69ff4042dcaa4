"""The interop client: ``python -m puregrpc.interop.client --test_case=NAME ...``.

Takes the flags of the grpc interop clients (doc/interop-test-descriptions.md,
"Client"), runs one case against the server and exits 0 when it passes, 1
with a ``FAIL`` line naming what went wrong when it does not, and 2 for bad
flags. ``--test_case=all`` runs every case in turn.

TLS: ``--use_tls=true`` verifies the server against the system roots, or
against ``--ca_file`` (a puregrpc extension standing in for the grpc test CA
that ``--use_test_ca`` names, which puregrpc does not ship).
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Sequence

import trio

from ..client import Channel, ChannelOptions
from ..wire import RpcError
from ._cases import CASES, CaseContext, InteropFailure, MessageFlags
from .protos.test_puregrpc import TestServiceStub

#: A case that takes longer than this fails instead of hanging the client.
CASE_TIMEOUT = 60.0


def parse_bool(text: str) -> bool:
    """Parse a ``--flag=true|false`` value as the grpc interop binaries do."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The command line of the interop client."""
    parser = argparse.ArgumentParser(
        prog="python -m puregrpc.interop.client",
        description="Run one gRPC interop test case against a TestService server.",
    )
    parser.add_argument("--server_host", default="localhost", help="host to connect to")
    parser.add_argument(
        "--server_host_override",
        default=None,
        help="host name to claim in TLS (SNI, certificate check) and :authority",
    )
    parser.add_argument("--server_port", type=_port, required=True, help="port to connect to")
    parser.add_argument(
        "--test_case",
        required=True,
        choices=[*CASES, "all"],
        metavar="TESTCASE",
        help="the case to run: " + ", ".join(CASES) + ", or all",
    )
    parser.add_argument("--use_tls", type=parse_bool, default=False, metavar="BOOL")
    parser.add_argument("--use_test_ca", type=parse_bool, default=False, metavar="BOOL")
    parser.add_argument("--ca_file", default=None, help="CA certificate (PEM) to trust")
    # Accepted for command-line compatibility; the cloud-to-prod auth cases
    # that use them are not part of this client.
    for unused in ("--default_service_account", "--oauth_scope", "--service_account_key_file"):
        parser.add_argument(unused, default=None, help=argparse.SUPPRESS)
    return parser


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.use_tls:
        return None
    if args.use_test_ca and args.ca_file is None:
        raise ValueError(
            "--use_test_ca=true needs --ca_file=PATH: puregrpc does not ship the grpc test CA"
        )
    return ssl.create_default_context(cafile=args.ca_file)


async def run_case(
    name: str,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    host_override: str | None = None,
) -> None:
    """Run case ``name`` against ``host:port`` on a fresh channel.

    Raises :class:`InteropFailure` when the case fails, including when the
    call fails in a way the case did not expect.
    """
    case = CASES[name]
    flags = MessageFlags()
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = ChannelOptions(
        tracer=flags,
        authority=None if host_override is None else f"{host_override}:{port}",
    )
    channel = Channel(
        target, ssl_context=ssl_context, options=options, server_hostname=host_override
    )
    failure: InteropFailure | None = None
    with trio.fail_after(CASE_TIMEOUT):
        async with channel:
            # The outcome is carried out of the block rather than raised
            # through it: the channel's nursery would wrap it in an
            # ExceptionGroup.
            try:
                await case(CaseContext(channel=channel, stub=TestServiceStub(channel), flags=flags))
            except InteropFailure as exc:
                failure = exc
            except RpcError as error:
                failure = InteropFailure(f"unexpected status {error.code.name}: {error.details!r}")
    if failure is not None:
        raise failure


async def _run(args: argparse.Namespace, ssl_context: ssl.SSLContext | None) -> int:
    names = list(CASES) if args.test_case == "all" else [args.test_case]
    failed = 0
    for name in names:
        try:
            await run_case(
                name,
                args.server_host,
                args.server_port,
                ssl_context=ssl_context,
                host_override=args.server_host_override,
            )
        except InteropFailure as failure:
            failed += 1
            print(f"FAIL {name}: {failure}", flush=True)
        except trio.TooSlowError:
            failed += 1
            print(f"FAIL {name}: did not finish within {CASE_TIMEOUT:.0f} s", flush=True)
        except Exception as exc:  # a bug on our side: still one FAIL line, not a traceback
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"PASS {name}", flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run the case(s), return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ssl_context = _ssl_context(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    return trio.run(_run, args, ssl_context)


if __name__ == "__main__":
    sys.exit(main())
