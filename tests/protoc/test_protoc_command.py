"""``python -m puregrpc.protoc`` and the plugin, on fresh .proto files in a scratch directory.

One module-scoped run of the command generates everything; the tests then
import the output in a subprocess (its messages would clash with the
checked-in ``puregrpc.testing`` ones in this process's descriptor pool),
type-check it with mypy --strict, and lint it with ruff.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from puregrpc.protoc import generate
from puregrpc.testing.protos import echo_pb2

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

NESTED_PROTO = """\
syntax = "proto3";

package shapes.v1;

import "google/protobuf/empty.proto";
import "shapes/plain.proto";

// Shapes, nested.
message Outer {
  message Inner {
    optional string label = 1;  // proto3 optional: needs FEATURE_PROTO3_OPTIONAL
  }
  Inner inner = 1;
  shapes.v1.Plain plain = 2;
}

// A service whose types come from three files.
service Shapes {
  // Returns "a \\\\ backslash" and \"\"\"triple quotes\"\"\" safely in docstrings.
  rpc Ping(google.protobuf.Empty) returns (Outer.Inner);
  rpc Watch(Outer) returns (stream google.protobuf.Empty);
  rpc Upload(stream Plain) returns (google.protobuf.Empty);
}
"""

PLAIN_PROTO = """\
syntax = "proto3";

package shapes.v1;

message Plain {
  int32 value = 1;
}
"""

EDITION_PROTO = """\
edition = "2023";

package shapes.v1;

message Ask {
  string text = 1;
}

service Editions {
  rpc Answer(Ask) returns (Ask);
}

service Nothing {}
"""

# Typed client and server code written against the generated modules: mypy
# checks that the stubs' and servicers' types are what an application needs.
USAGE = """\
from collections.abc import AsyncIterator

import puregrpc.client
from echo_pb2 import EchoReply, EchoRequest
from echo_puregrpc import EchoServicer, EchoStub
from google.protobuf import empty_pb2
from puregrpc.server import RequestIterator, ServicerContext
from shapes import nested_pb2
from shapes.nested_puregrpc import ShapesStub


class MyEcho(EchoServicer):
    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        return EchoReply(message=request.message)

    async def Bidi(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        async for request in requests:
            yield EchoReply(message=request.message)


async def client(channel: puregrpc.client.Channel) -> list[str]:
    stub = EchoStub(channel)
    reply: EchoReply = await stub.Unary(EchoRequest(message="x"), timeout=5)
    words = [reply.message]
    async for r in stub.ServerStream(EchoRequest(count=2), metadata=[("k", "v")]):
        words.append(r.message)
    total: EchoReply = await stub.ClientStream([EchoRequest(message="a")])
    words.append(total.message)
    inner: nested_pb2.Outer.Inner = await ShapesStub(channel).Ping(empty_pb2.Empty())
    words.append(inner.label)
    return words
"""

# Run in a subprocess, from the output directory: the generated code over
# loopback, all four call types, through a stub and a servicer subclass.
END_TO_END = """\
import json
import trio
import puregrpc.client
import puregrpc.server
from puregrpc import RpcError
from echo_pb2 import EchoReply, EchoRequest
from echo_puregrpc import EchoServicer, EchoStub
from shapes import nested_pb2
from shapes.nested_puregrpc import ShapesServicer, ShapesStub
from google.protobuf import empty_pb2


class MyEcho(EchoServicer):
    async def Unary(self, request, context):
        return EchoReply(message=request.message)

    async def ServerStream(self, request, context):
        for index in range(request.count):
            yield EchoReply(message=request.message, index=index)

    async def ClientStream(self, requests, context):
        return EchoReply(message="+".join([r.message async for r in requests]))

    async def Bidi(self, requests, context):
        async for request in requests:
            yield EchoReply(message=request.message[::-1])


class MyShapes(ShapesServicer):
    async def Ping(self, request, context):
        return nested_pb2.Outer.Inner(label="pong")


async def main():
    server = puregrpc.server.Server([MyEcho(), MyShapes()])
    async with server.listening("127.0.0.1", 0):
        async with puregrpc.client.Channel(f"127.0.0.1:{server.port}") as channel:
            stub = EchoStub(channel)
            shapes = ShapesStub(channel)
            out = {}
            out["unary"] = (await stub.Unary(EchoRequest(message="hi"), timeout=5)).message
            out["server"] = [
                r.index async for r in stub.ServerStream(EchoRequest(count=3), timeout=5)
            ]
            requests = [EchoRequest(message=m) for m in "abc"]
            out["client"] = (await stub.ClientStream(requests, timeout=5)).message
            out["bidi"] = [r.message async for r in stub.Bidi(requests[:2], timeout=5)]
            out["nested"] = (await shapes.Ping(empty_pb2.Empty(), timeout=5)).label
            try:
                await shapes.Upload([nested_pb2.shapes_dot_plain__pb2.Plain()], timeout=5)
            except RpcError as exc:
                out["default"] = [exc.code.name, exc.details]
    print(json.dumps(out))


trio.run(main)
"""


def _run(
    *args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Protos in ``src/``, compiled by ``python -m puregrpc.protoc`` into ``out/``."""
    base = tmp_path_factory.mktemp("protoc")
    src, out = base / "src", base / "out"
    (src / "shapes").mkdir(parents=True)
    out.mkdir()
    shutil.copy(ROOT / "proto/puregrpc/testing/echo.proto", src / "echo.proto")
    (src / "shapes/nested.proto").write_text(NESTED_PROTO)
    (src / "shapes/plain.proto").write_text(PLAIN_PROTO)
    (src / "shapes/editions.proto").write_text(EDITION_PROTO)
    result = _run(
        sys.executable,
        "-m",
        "puregrpc.protoc",
        f"-I{src}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--puregrpc_out={out}",
        "echo.proto",
        "shapes/nested.proto",
        "shapes/plain.proto",
        "shapes/editions.proto",
        cwd=src,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_files_land_next_to_pb2_modules(generated: Path) -> None:
    names = {str(p.relative_to(generated)) for p in generated.rglob("*.py*")}
    assert {
        "echo_pb2.py",
        "echo_puregrpc.py",
        "shapes/nested_pb2.py",
        "shapes/nested_pb2.pyi",
        "shapes/nested_puregrpc.py",
        "shapes/editions_puregrpc.py",
    } <= names
    assert "shapes/plain_puregrpc.py" not in names  # no services, no module


def test_imports_follow_protoc_layout(generated: Path) -> None:
    nested = (generated / "shapes/nested_puregrpc.py").read_text()
    assert "from google.protobuf import empty_pb2\n" in nested
    assert "from shapes import nested_pb2, plain_pb2\n" in nested
    assert "-> UnaryUnaryCall[empty_pb2.Empty, nested_pb2.Outer.Inner]:" in nested
    # Backslashes and triple quotes in comments survive into the docstrings.
    pings = [
        node
        for node in ast.walk(ast.parse(nested))
        if isinstance(node, ast.FunctionDef) and node.name == "Ping"
    ]
    expected = r'Returns "a \\ backslash" and """triple quotes""" safely in docstrings.'
    assert [ast.get_docstring(ping) for ping in pings] == [expected, expected]  # both stubs
    assert "import echo_pb2\n" in (generated / "echo_puregrpc.py").read_text()


def test_generated_code_works_end_to_end(generated: Path) -> None:
    result = _run(sys.executable, "-c", END_TO_END, cwd=generated)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "unary": "hi",
        "server": [0, 1, 2],
        "client": "a+b+c",
        "bidi": ["a", "b"],
        "nested": "pong",
        "default": ["UNIMPLEMENTED", "Method not implemented!"],
    }


def test_mypy_strict(generated: Path, tmp_path: Path) -> None:
    (generated / "usage.py").write_text(USAGE)
    config = tmp_path / "mypy.ini"
    # protoc's own .pyi stubs use a bare Mapping (type-arg); ours must be clean.
    config.write_text(
        "[mypy]\nstrict = True\nwarn_unreachable = True\nexplicit_package_bases = True\n"
        "[mypy-shapes.nested_pb2]\ndisable_error_code = type-arg\n"
    )
    modules = ["usage.py", "echo_puregrpc.py", "shapes/nested_puregrpc.py"]
    result = _run(
        BIN / "mypy",
        f"--config-file={config}",
        f"--cache-dir={tmp_path / 'cache'}",
        *modules,
        "shapes/editions_puregrpc.py",
        cwd=generated,
        # An editable install is an import hook mypy cannot follow: point it
        # at the source tree.
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_clean(generated: Path, tmp_path: Path) -> None:
    ruff = BIN / "ruff"
    (generated / "ruff.toml").write_text(
        'line-length = 100\ntarget-version = "py311"\n'
        '[lint]\nselect = ["E", "W", "F", "I", "B", "UP", "SIM", "RUF", "ASYNC", "PIE"]\n'
    )
    files = ["echo_puregrpc.py", "shapes/nested_puregrpc.py", "shapes/editions_puregrpc.py"]
    check = _run(ruff, "check", "--no-cache", *files, cwd=generated)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _run(ruff, "format", "--no-cache", "--check", "--diff", *files, cwd=generated)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def _request(parameter: str = "") -> plugin_pb2.CodeGeneratorRequest:
    request = plugin_pb2.CodeGeneratorRequest(parameter=parameter)
    request.file_to_generate.append(echo_pb2.DESCRIPTOR.name)
    proto = request.proto_file.add()
    echo_pb2.DESCRIPTOR.CopyToProto(proto)  # no SourceCodeInfo: no comments
    return request


def test_generic_docstrings_without_comments() -> None:
    response = generate(_request())
    assert response.error == ""
    features = plugin_pb2.CodeGeneratorResponse
    assert response.supported_features & features.FEATURE_PROTO3_OPTIONAL
    assert response.supported_features & features.FEATURE_SUPPORTS_EDITIONS
    assert response.minimum_edition == descriptor_pb2.EDITION_PROTO2
    [file] = response.file
    assert file.name == "puregrpc/testing/protos/echo_puregrpc.py"
    assert '"""Call ``/puregrpc.testing.Echo/Unary``: one request, one response' in file.content
    assert "Serve ``/puregrpc.testing.Echo/Bidi``; the default answers UNIMPLEMENTED." in (
        file.content
    )


def test_plugin_rejects_unknown_parameter() -> None:
    response = generate(_request("grpc_2_0"))
    assert "takes no options, got 'grpc_2_0'" in response.error
    assert len(response.file) == 0


def test_plugin_rejects_keyword_method_names() -> None:
    request = _request()
    request.proto_file[0].service[0].method[0].name = "lambda"
    response = generate(request)
    assert response.error == (
        "method puregrpc.testing.Echo.lambda: 'lambda' is not usable as a Python identifier"
    )


def test_console_script_speaks_the_plugin_protocol() -> None:
    script = BIN / "protoc-gen-puregrpc"
    if not script.exists():
        pytest.skip("the protoc-gen-puregrpc script is not installed (pip install -e .)")
    result = subprocess.run(
        [script], input=_request().SerializeToString(), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    assert [f.name for f in response.file] == ["puregrpc/testing/protos/echo_puregrpc.py"]


def test_plugin_refuses_garbage_on_stdin() -> None:
    code = "import sys; from puregrpc.protoc import plugin_main; sys.exit(plugin_main())"
    result = subprocess.run(
        [sys.executable, "-c", code], input=b"\xff\xff", capture_output=True, timeout=60
    )
    assert result.returncode == 1
    assert b"not a CodeGeneratorRequest" in result.stderr


def test_clear_error_without_grpcio_tools() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["grpc_tools"] = None  # as if grpcio-tools were not installed
        from puregrpc.protoc import run_protoc
        sys.exit(run_protoc(["x.proto"]))
        """
    )
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 2
    assert "pip install grpcio-tools" in result.stderr


def test_protoc_errors_pass_through(tmp_path: Path) -> None:
    result = _run(
        sys.executable, "-m", "puregrpc.protoc", f"--puregrpc_out={tmp_path}", "missing.proto"
    )
    assert result.returncode != 0
    assert "missing.proto" in result.stderr
