"""A real gRPC-Web client under node calls the server: connect-es's gRPC-Web transport.

tests/web/node holds the client (echo_client.mjs), its exact npm versions
(package.json, package-lock.json) and the Echo code protoc-gen-es generated
from proto/puregrpc/testing/echo.proto. ``npm ci`` runs here when
node_modules is missing; the test skips only where node or npm is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from node_support import needs_node, npm_ci
from test_web_calls import Echo

from puregrpc.server import Server

NODE_DIR = Path(__file__).parent / "node"
PROTO_DIR = Path(__file__).parents[2] / "proto"
GENERATED = NODE_DIR / "gen" / "puregrpc" / "testing" / "echo_pb.js"

pytestmark = needs_node


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return npm_ci(NODE_DIR, "@connectrpc/connect-node")


def test_generated_code_is_current(node_modules: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--plugin=protoc-gen-es={node_modules / '.bin' / 'protoc-gen-es'}",
            f"--es_out={tmp_path}",
            "--es_opt=target=js",
            "puregrpc/testing/echo.proto",
        ],
        check=True,
        timeout=120,
    )
    fresh = (tmp_path / "puregrpc" / "testing" / "echo_pb.js").read_text()
    assert fresh == GENERATED.read_text(), "regenerate with `npm run generate` in tests/web/node"


@pytest.mark.parametrize("http_version", ["1.1", "2"])
async def test_connect_grpc_web_client(node_modules: Path, http_version: str) -> None:
    async with Server([Echo()]).listening("127.0.0.1", 0) as server:
        with trio.fail_after(60):
            done = await trio.run_process(
                ["node", "echo_client.mjs", str(server.port), http_version],
                cwd=NODE_DIR,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    results = json.loads(done.stdout)
    assert results["unary"] == {"message": "hello", "payload": [0, 1, 2]}
    assert results["serverStream"] == [0, 1, 2, 3]
    assert results["metadata"] == {"initial": "seen abc", "trailing": "bye"}
    assert results["error"] == {
        "code": "FailedPrecondition",
        "message": "nope: ünïcode\nsecond line",
    }
    assert results["deadline"]["code"] == "DeadlineExceeded"
    assert results["clientStream"]["code"] == "Unimplemented"
    assert "gRPC-Web carries unary and server-streaming" in results["clientStream"]["message"]
