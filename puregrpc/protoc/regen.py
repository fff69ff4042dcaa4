"""Regenerate the protobuf code checked in to puregrpc (run from a source checkout).

Usage, from the repository root::

    .venv/bin/python -m puregrpc.protoc.regen

The sources live in ``proto/``, exactly as their upstreams publish them:

* ``proto/grpc/testing/{empty,messages,test}.proto``: the standard interop
  service, verbatim from grpc/grpc ``src/proto/grpc/testing/``;
* ``proto/puregrpc/testing/echo.proto``: a small service for our own tests;
* ``proto/streaming/v1/streaming.proto``: the streaming service of the main
  job (package ``puregrpc_streaming``, beside the library);
* ``proto/grpc/health/v1/health.proto`` and
  ``proto/grpc/reflection/{v1,v1alpha}/reflection.proto``: the standard
  health and reflection services, verbatim from grpc/grpc-proto (v1
  reflection from grpc/grpc ``src/proto/grpc/reflection/v1/``);
* ``proto/grpc/channelz/v1/channelz.proto``: the channelz service (A14),
  declared to give the same descriptor as grpcio-channelz's.

Their code must be importable inside puregrpc, and must not be importable as
``grpc.testing``: protoc's generated imports (``from grpc.testing import
empty_pb2``) would resolve into grpcio's own ``grpc`` package. So each set of
files is first *staged*: copied into a temporary tree under the Python
package that will hold its code (``puregrpc/interop/protos/``,
``puregrpc/testing/protos/``), with ``import "..."`` lines between the files
of the set rewritten to those staged paths. Only file paths change: the
``package`` statements, hence message and service names and every byte on
the wire, stay those of the originals. protoc then runs on the staged tree
(``-I staging``) and writes ``x_pb2.py``, ``x_pb2.pyi`` and
``x_puregrpc.py`` into the package directories.

Health and v1alpha reflection are also registered in protobuf's default
descriptor pool by grpcio-health-checking, grpcio-reflection and grpcio-channelz, under
``grpc_health/v1/health.proto``, ``grpc_reflection/v1alpha/reflection.proto`` and
``grpc_channelz/v1/channelz.proto``.
The pool refuses the same message names from a file of another name, and
accepts a second registration of a file only with the same name and the same
content. So those sets have a ``pool_dir``: their ``_pb2`` modules are
generated from a copy staged there (and moved into ``package_dir``, module
names fixed up), while their ``_puregrpc`` modules are generated from the copy
staged under ``package_dir``, as usual, so that they import the moved modules.

``tests/protoc`` regenerates into a temporary directory and compares, so a
stale checked-in module fails the tests.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._runner import run_protoc


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtoSet:
    """Files compiled together into one Python package directory."""

    #: .proto files, relative to ``proto/``.
    sources: tuple[str, ...]
    #: Where their code goes, relative to the repository root.
    package_dir: str
    #: The directory protobuf's descriptor pool knows the files under, when
    #: it must differ from ``package_dir`` (another package registers the same
    #: files there); empty: ``package_dir``.
    pool_dir: str = ""


#: Everything ``main`` regenerates.
PROTO_SETS = (
    ProtoSet(
        sources=(
            "grpc/testing/empty.proto",
            "grpc/testing/messages.proto",
            "grpc/testing/test.proto",
        ),
        package_dir="puregrpc/interop/protos",
    ),
    ProtoSet(sources=("puregrpc/testing/echo.proto",), package_dir="puregrpc/testing/protos"),
    ProtoSet(sources=("streaming/v1/streaming.proto",), package_dir="puregrpc_streaming/protos"),
    ProtoSet(
        sources=("grpc/health/v1/health.proto",),
        package_dir="puregrpc/health/protos",
        pool_dir="grpc_health/v1",
    ),
    ProtoSet(
        sources=("grpc/reflection/v1/reflection.proto",),
        package_dir="puregrpc/reflection/protos/v1",
        pool_dir="grpc_reflection/v1",
    ),
    ProtoSet(
        sources=("grpc/reflection/v1alpha/reflection.proto",),
        package_dir="puregrpc/reflection/protos/v1alpha",
        pool_dir="grpc_reflection/v1alpha",
    ),
    ProtoSet(
        sources=("grpc/channelz/v1/channelz.proto",),
        package_dir="puregrpc/channelz/protos",
        pool_dir="grpc_channelz/v1",
    ),
)

#: Suffixes of the files protoc writes for one .proto.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_puregrpc.py")


def repository_root() -> Path:
    """The source checkout this module lives in (it must have ``proto/``)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "proto").is_dir():
        raise RuntimeError(f"{root} has no proto/ directory: run this from a source checkout")
    return root


def stage(
    proto_set: ProtoSet, proto_root: Path, staging: Path, under: str | None = None
) -> list[str]:
    """Copy a set's files under its package path, rewriting imports within the set.

    ``under`` stages them in another directory instead (a set's ``pool_dir``).
    Returns the staged paths, relative to ``staging``, to hand to protoc.
    """
    under = proto_set.package_dir if under is None else under
    by_base = {Path(source).name: source for source in proto_set.sources}
    staged = []
    for source in proto_set.sources:
        text = (proto_root / source).read_text(encoding="utf-8")
        lines = []
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            if stripped.startswith('import "') and stripped.endswith('";'):
                imported = stripped[len('import "') : -len('";')]
                # Upstream spells these "src/proto/grpc/testing/empty.proto"
                # (paths of the grpc/grpc tree): map by file name.
                if Path(imported).name in by_base:
                    new = f"{under}/{Path(imported).name}"
                    line = line.replace(f'"{imported}"', f'"{new}"')
            lines.append(line)
        target = f"{under}/{Path(source).name}"
        (staging / target).parent.mkdir(parents=True, exist_ok=True)
        (staging / target).write_text("".join(lines), encoding="utf-8")
        staged.append(target)
    return staged


def regenerate(out: Path, root: Path | None = None) -> list[Path]:
    """Generate every set's code under ``out`` (the repository root, or a scratch directory).

    Returns the paths written, relative to ``out``. Raises
    :class:`RuntimeError` if protoc fails (its messages are on stderr).
    """
    root = repository_root() if root is None else root
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="puregrpc-regen-") as scratch:
        staging = Path(scratch)
        for proto_set in PROTO_SETS:
            staged = stage(proto_set, root / "proto", staging)
            (out / proto_set.package_dir).mkdir(parents=True, exist_ok=True)
            if proto_set.pool_dir:
                _protoc(staging, staged, out, ("puregrpc",))
                _generate_pool_named(proto_set, root, out)
            else:
                _protoc(staging, staged, out, ("python", "pyi", "puregrpc"))
            for path in staged:
                stem = path.removesuffix(".proto")
                _patch_stub(out / (stem + "_pb2.pyi"))
                for suffix in GENERATED_SUFFIXES:
                    generated = Path(stem + suffix)
                    if (out / generated).exists():
                        written.append(generated)
    return written


def _protoc(staging: Path, staged: list[str], out: Path, kinds: tuple[str, ...]) -> None:
    """Run protoc on staged files, with one ``--<kind>_out=out`` per kind."""
    status = run_protoc(
        [
            f"-I{staging}",
            *(f"--{kind}_out={out}" for kind in kinds),
            *(str(staging / path) for path in staged),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed (exit status {status}) on {staged}")


def _generate_pool_named(proto_set: ProtoSet, root: Path, out: Path) -> None:
    """Write a set's ``_pb2`` modules, whose descriptors are named under ``pool_dir``.

    protoc derives module paths from file names, so it writes them under
    ``pool_dir``; they move to ``package_dir``, with the dotted module names
    inside (imports, the classes' ``__module__``) following them.
    """
    pool_module = proto_set.pool_dir.replace("/", ".")
    package_module = proto_set.package_dir.replace("/", ".")
    with tempfile.TemporaryDirectory(prefix="puregrpc-regen-pool-") as scratch:
        staging, generated = Path(scratch, "staging"), Path(scratch, "generated")
        staged = stage(proto_set, root / "proto", staging, proto_set.pool_dir)
        generated.mkdir()
        _protoc(staging, staged, generated, ("python", "pyi"))
        for path in staged:
            stem = path.removesuffix(".proto")
            for suffix in ("_pb2.py", "_pb2.pyi"):
                text = (generated / (stem + suffix)).read_text(encoding="utf-8")
                # Dotted names only: the descriptor's file name ("a/b.proto") stays.
                text = text.replace(f"{pool_module}.", f"{package_module}.")
                text = text.replace(f"from {pool_module} import", f"from {package_module} import")
                target = out / proto_set.package_dir / (Path(stem).name + suffix)
                target.write_text(text, encoding="utf-8")


#: Prepended to protoc's ``_pb2.pyi`` stubs, which the project type-checks.
STUB_PREAMBLE = (
    "# protoc's --pyi_out types message-valued constructor arguments as a bare\n"
    "# ``Mapping``, which mypy --strict rejects; added by puregrpc.protoc.regen.\n"
    '# mypy: disable-error-code="type-arg"\n'
)


def _patch_stub(path: Path) -> None:
    if path.exists():
        path.write_text(STUB_PREAMBLE + path.read_text(encoding="utf-8"), encoding="utf-8")


def main() -> int:
    """Regenerate in place and list what was written."""
    root = repository_root()
    for path in regenerate(root, root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
