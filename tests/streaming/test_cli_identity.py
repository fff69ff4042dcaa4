"""The command line and identity: ``serve --tokens``/``--token``, clients' ``--token``."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import trio

from puregrpc_streaming.cli import amain
from puregrpc_streaming.identity import Identity
from puregrpc_streaming.server import ServeConfig, serve

TOKEN = "cli-token-0123456789"


async def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    """One command in this loop: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(20):
        code = await amain(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def target(nursery: trio.Nursery, tmp_path: Path) -> str:
    """A server that knows one token, for user ``ann``."""
    config = ServeConfig(
        data_dir=tmp_path / "data",
        dataset_rows=100,
        tokens={TOKEN: Identity(user_id="ann")},
    )
    address: str = await nursery.start(serve, config)
    return address


async def test_client_commands_send_the_token(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = await run("get", "k", "--target", target)
    assert code == 1 and err.startswith("error: UNAUTHENTICATED: "), err
    code, _, err = await run("get", "k", "--target", target, "--token", TOKEN)
    assert code == 1 and err.startswith("error: NOT_FOUND: "), err  # authenticated
    monkeypatch.setenv("PUREGRPC_STREAMING_TOKEN", TOKEN)
    code, _, err = await run("get", "k", "--target", target)
    assert err.startswith("error: NOT_FOUND: "), err


async def test_chat_with_a_token_needs_no_user(target: str) -> None:
    code, out, err = await run(
        "chat", "--room", "lobby", "--target", target, "--token", TOKEN, stdin="hello\n"
    )
    assert code == 0, err
    assert re.search(r"#lobby ann: hello$", out, re.MULTILINE), out


async def test_serve_names_a_bad_token_file(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.txt"
    bad.write_text("x:ann\n")
    code, _, err = await run("serve", "--data-dir", str(tmp_path / "d"), "--tokens", str(bad))
    assert code == 2
    assert err.startswith(f"error: {bad}:1: the token must be"), err
    code, _, err = await run("serve", "--data-dir", str(tmp_path / "d"), "--client-ca", str(bad))
    assert code == 2 and "--client-ca (mutual TLS) needs --tls-cert" in err
