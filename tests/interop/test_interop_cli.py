"""The interop entry points as processes: ``python -m puregrpc.interop.server`` / ``.client``.

The server process is driven by the grpcio client cases and by the client
process; the client process also runs against grpcio's server. Flags are
the grpc interop binaries' (``--port``, ``--use_tls``, ``--server_host``,
``--server_port``, ``--test_case``); bad ones exit 2 naming the problem.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from interop_support import GrpcioServer, run_grpcio_case

pytestmark = pytest.mark.interop

PROCESS_TIMEOUT = 30.0


def _start_server(*flags: str) -> tuple[subprocess.Popen[str], int]:
    """Start the interop server process; read the bound port from its first line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "puregrpc.interop.server", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], PROCESS_TIMEOUT)
    line = process.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        process.kill()
        _, err = process.communicate(timeout=PROCESS_TIMEOUT)
        pytest.fail(f"interop server did not print its port: {line!r} {err!r}")
    return process, int(line)


def _stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM the server process; return its exit status (pipes closed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=PROCESS_TIMEOUT)
        raise
    return process.returncode


@pytest.fixture(scope="module")
def server_process() -> Iterator[int]:
    """The interop server as a process with ``--port=0 --use_tls=false``; yields its port."""
    process, port = _start_server("--port=0", "--use_tls=false")
    try:
        yield port
    finally:
        assert _stop(process) == 0


def _client(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "puregrpc.interop.client", *flags],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize(
    "case", ["large_unary", "ping_pong", "special_status_message", "unimplemented_service"]
)
def test_grpcio_client_against_server_process(server_process: int, case: str) -> None:
    # No response-flag view here (the server is another process): those
    # checks are the in-process matrix's job.
    run_grpcio_case(case, server_process, None)


def test_client_process_against_server_process(server_process: int) -> None:
    for case in ("empty_unary", "custom_metadata", "server_compressed_streaming"):
        result = _client(
            "--server_host=127.0.0.1", f"--server_port={server_process}", f"--test_case={case}"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == f"PASS {case}"


def test_server_process_listens_on_ipv6_too(server_process: int) -> None:
    result = _client(
        "--server_host=::1", f"--server_port={server_process}", "--test_case=empty_unary"
    )
    if "UNAVAILABLE" in result.stdout and not Path("/proc/net/if_inet6").exists():
        pytest.skip("no IPv6 on this machine")
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_process_against_grpcio(grpcio_test_server: GrpcioServer) -> None:
    result = _client(
        "--server_host=127.0.0.1",
        f"--server_port={grpcio_test_server.port}",
        "--test_case=server_compressed_unary",
        "--use_tls=false",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS server_compressed_unary" in result.stdout


def test_client_process_reports_a_failure(server_process: int) -> None:
    # Nothing listens on the server's port + nothing: a closed port on
    # loopback. The case fails with a message naming the status.
    result = _client("--server_host=127.0.0.1", "--server_port=1", "--test_case=empty_unary")
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL empty_unary: unexpected status UNAVAILABLE")


@pytest.mark.parametrize(
    ("module", "flags", "named"),
    [
        ("server", ["--port=http"], "--port"),
        ("server", ["--port=0", "--use_tls=maybe"], "--use_tls"),
        ("server", ["--port=0", "--use_tls=true"], "--tls_cert_file"),
        ("client", ["--server_port=1", "--test_case=no_such_case"], "--test_case"),
        ("client", ["--test_case=empty_unary"], "--server_port"),
        ("client", ["--server_port=70000", "--test_case=empty_unary"], "--server_port"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(module: str, flags: list[str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"puregrpc.interop.{module}", *flags],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_server_port_in_use_is_a_clear_error(server_process: int) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "puregrpc.interop.server", f"--port={server_process}"],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert process.returncode == 1
    assert f"cannot listen on port {server_process}" in process.stderr
    assert "Traceback" not in process.stderr


def test_tls_server_and_client_processes(tmp_path: Path) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("localhost")
    ca_file, chain, key = tmp_path / "ca.pem", tmp_path / "chain.pem", tmp_path / "key.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    process, port = _start_server(
        "--port=0",
        "--host=127.0.0.1",
        "--use_tls=true",
        f"--tls_cert_file={chain}",
        f"--tls_key_file={key}",
    )
    try:
        result = _client(
            "--server_host=127.0.0.1",
            "--server_host_override=localhost",
            f"--server_port={port}",
            "--test_case=large_unary",
            "--use_tls=true",
            "--use_test_ca=true",
            f"--ca_file={ca_file}",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        untrusted = _client(
            "--server_host=127.0.0.1",
            "--server_host_override=localhost",
            f"--server_port={port}",
            "--test_case=large_unary",
            "--use_tls=true",
        )
        assert untrusted.returncode == 1
        assert "certificate verify failed" in untrusted.stdout
    finally:
        assert _stop(process) == 0
