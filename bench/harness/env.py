"""Setup: paths and cores, logging, h2load, the venvs, grpc-go, ``--baseline`` trees, and
the implementations measured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
IMPLS = BENCH / "impls"
VENVS = BENCH / "venvs"
RESULTS = BENCH / "results"

SERVER_CORE = "0"
LOAD_CORE = "1"

#: venv name -> pip requirements (the puregrpc venv installs this repo, editable,
#: so every run measures the working tree).
VENV_PACKAGES = {
    "puregrpc": ["-e", str(REPO)],
    "grpcio": ["grpcio"],
    "grpclib": ["grpclib", "uvloop"],
    "purerpc": ["purerpc", "trio"],
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_quiet(cmd: list[str], what: str, timeout: float = 900) -> bool:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        log(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return False
    return True


def apt_install(packages: list[str], why: str) -> bool:
    if os.geteuid() != 0:
        log(f"{why}: run as root, or install it yourself: apt-get install -y {' '.join(packages)}")
        return False
    log(f"{why}: apt-get install -y {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(cmd, capture_output=True, env=env).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
    return subprocess.run(cmd, capture_output=True, env=env).returncode == 0


def ensure_h2load() -> str:
    path = shutil.which("h2load")
    if path is None and apt_install(["nghttp2-client"], "h2load is missing"):
        path = shutil.which("h2load")
    if path is None:
        sys.exit(
            "h2load (Debian package nghttp2-client) is required: apt-get install -y nghttp2-client"
        )
    return path


def ensure_venvs() -> None:
    for name, packages in VENV_PACKAGES.items():
        ensure_venv(name, packages)


def ensure_venv(name: str, packages: list[str]) -> None:
    """Create ``venvs/NAME`` with PACKAGES, unless its stamp says it already has them."""
    venv = VENVS / name
    stamp = venv / ".bench-installed"
    wanted = " ".join(packages)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"creating venv {venv.relative_to(REPO)}: pip install {wanted}")
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if not run_quiet([*pip, "--upgrade", "pip"], f"{name}: pip upgrade"):
        sys.exit(1)
    if not run_quiet([*pip, *packages], f"{name}: pip install"):
        if name == "grpclib" and run_quiet([*pip, "grpclib"], "grpclib without uvloop"):
            log("uvloop did not install: grpclib runs on asyncio only")
        else:
            sys.exit(f"could not install the {name} venv")
    stamp.write_text(wanted)


def git(*args: str) -> str:
    """Run git in the repository; its stdout, trailing whitespace stripped (exits on failure)."""
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"git {' '.join(args)} failed: {result.stderr.strip() or result.returncode}")
    return result.stdout.rstrip()


@dataclass(frozen=True)
class Baseline:
    """An older commit's puregrpc: its own source tree and venv under ``venvs/``."""

    ref: str  # as given on the command line
    sha: str
    short: str
    subject: str
    tree: Path
    venv: str  # venv name under VENVS

    @property
    def name(self) -> str:
        return f"puregrpc@{self.short}"


def ensure_baseline(ref: str) -> Baseline:
    """Extract REF (``git archive``) to ``venvs/base-src-SHA`` and install it, editable,
    in ``venvs/puregrpc-base-SHA``; both are reused while they exist for that commit."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    short = git("rev-parse", "--short=9", sha)
    tree = VENVS / f"base-src-{short}"
    stamp = tree / ".bench-commit"
    if not (stamp.exists() and stamp.read_text() == sha):
        log(f"baseline {ref}: git archive {short} -> {tree.relative_to(REPO)}")
        partial = VENVS / f".base-src-{short}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = partial / "source.tar"
        git("archive", "--format=tar", "-o", str(archive), sha)
        subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(partial)], check=True)
        archive.unlink()
        (partial / ".bench-commit").write_text(sha)
        partial.rename(tree)
    if not (tree / "bench" / "impls" / "puregrpc_impl.py").exists():
        sys.exit(f"--baseline {ref}: commit {short} has no bench/impls/puregrpc_impl.py")
    venv = f"puregrpc-base-{short}"
    ensure_venv(venv, ["-e", str(tree)])
    # From "/", so that neither the current directory nor this repo can supply puregrpc.
    where = subprocess.run(
        [str(VENVS / venv / "bin" / "python"), "-c", "import puregrpc; print(puregrpc.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.strip()
    if not where.startswith(str(tree) + os.sep):
        sys.exit(f"venv {venv} imports puregrpc from {where or 'nowhere'}, not from {tree}")
    subject = git("log", "-1", "--format=%s", sha)
    return Baseline(ref, sha, short, subject, tree, venv)


def working_tree_state() -> dict[str, object]:
    """What the ``puregrpc`` row runs: HEAD plus any uncommitted changes to the library."""
    paths = ["puregrpc", "puregrpc_streaming", "pyproject.toml", "bench/impls"]
    dirty = git("status", "--porcelain", "--", *paths).splitlines()
    return {"head": git("rev-parse", "--short=9", "HEAD"), "uncommitted": [d[3:] for d in dirty]}


def ensure_go() -> Path | None:
    """Build the grpc-go yardstick (Debian's Go toolchain and grpc-go), or None."""
    binary = VENVS / "go" / "benchgo"
    source = IMPLS / "go" / "main.go"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    grpc_go = Path("/usr/share/gocode/src/google.golang.org/grpc")
    if (shutil.which("go") is None or not grpc_go.exists()) and not apt_install(
        ["golang-go", "golang-google-grpc-dev"], "grpc-go yardstick (optional)"
    ):
        log("no grpc-go: the load generator check falls back to the raw h2 + trio server")
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        GO111MODULE="off",
        GOPATH="/usr/share/gocode",
        GOCACHE=str(VENVS / "go" / "cache"),
    )
    cmd = ["go", "build", "-o", str(binary), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log(f"grpc-go build failed, going on without it:\n{result.stderr[-1500:]}")
        return None
    return binary


# ---------------------------------------------------------- implementations


@dataclass(frozen=True)
class Impl:
    name: str
    server: list[str] | None  # argv before the port
    client: list[str] | None  # argv before HOST PORT
    #: An older commit's puregrpc (``--baseline``): measured with the others,
    #: but not slow-read, profiled, or checked against the targets.
    baseline: bool = False


def py(venv: str, script: str, *args: str, impls: Path = IMPLS) -> list[str]:
    """argv running ``IMPLS/SCRIPT ARGS`` with venv's python (IMPLS: this tree's, by default)."""
    return [str(VENVS / venv / "bin" / "python"), str(impls / script), *args]


def implementations(go: Path | None, uvloop: bool, baseline: Baseline | None = None) -> list[Impl]:
    impls = [
        Impl(
            "puregrpc",
            py("puregrpc", "puregrpc_impl.py", "server"),
            py("puregrpc", "puregrpc_impl.py", "client"),
        ),
    ]
    if baseline is not None:
        # The old tree's own driver: the public API may have changed since.
        old_impls = baseline.tree / "bench" / "impls"
        impls.append(
            Impl(
                baseline.name,
                py(baseline.venv, "puregrpc_impl.py", "server", impls=old_impls),
                py(baseline.venv, "puregrpc_impl.py", "client", impls=old_impls),
                baseline=True,
            )
        )
    impls += [
        Impl(
            "h2+trio",
            py("puregrpc", "raw_h2trio.py", "server"),
            py("puregrpc", "raw_h2trio.py", "client"),
        ),
        Impl(
            "grpcio-sync",
            py("grpcio", "grpcio_impl.py", "server", "sync"),
            py("grpcio", "grpcio_impl.py", "client", "sync"),
        ),
        Impl(
            "grpcio-aio",
            py("grpcio", "grpcio_impl.py", "server", "aio"),
            py("grpcio", "grpcio_impl.py", "client", "aio"),
        ),
        Impl(
            "grpclib",
            py("grpclib", "grpclib_impl.py", "server", "asyncio"),
            py("grpclib", "grpclib_impl.py", "client", "asyncio"),
        ),
    ]
    if uvloop:
        impls.append(
            Impl(
                "grpclib-uvloop",
                py("grpclib", "grpclib_impl.py", "server", "uvloop"),
                py("grpclib", "grpclib_impl.py", "client", "uvloop"),
            )
        )
    impls.append(
        Impl(
            "purerpc",
            py("purerpc", "purerpc_impl.py", "server"),
            py("purerpc", "purerpc_impl.py", "client"),
        )
    )
    if go is not None:
        impls.append(Impl("grpc-go", [str(go), "-port"], None))
    return impls
