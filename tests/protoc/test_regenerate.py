"""The checked-in generated modules are what the generator makes today."""

from __future__ import annotations

from pathlib import Path

from puregrpc.protoc import regen

ROOT = Path(__file__).resolve().parents[2]


def _descriptor_line(text: str) -> str:
    return next(line for line in text.splitlines() if "AddSerializedFile(" in line)


def test_checked_in_code_is_current(tmp_path: Path) -> None:
    written = regen.regenerate(tmp_path, ROOT)
    # Every proto gives _pb2.py and _pb2.pyi; those with services a _puregrpc.py too.
    sources = [source for proto_set in regen.PROTO_SETS for source in proto_set.sources]
    with_services = [source for source in sources if _has_services(source)]
    assert len(written) == 2 * len(sources) + len(with_services)
    stale = []
    for path in written:
        fresh = (tmp_path / path).read_text(encoding="utf-8")
        checked_in = ROOT / path
        current = checked_in.read_text(encoding="utf-8") if checked_in.exists() else None
        # Another grpcio-tools writes other boilerplate around the same
        # descriptor; for _pb2.py only the descriptor must match then.
        if (
            path.name.endswith("_pb2.py")
            and current is not None
            and _descriptor_line(fresh) == _descriptor_line(current)
        ):
            continue
        if fresh != current:
            stale.append(str(path))
    assert stale == [], f"stale generated code: run python -m puregrpc.protoc.regen ({stale})"


def _has_services(source: str) -> bool:
    return "\nservice " in "\n" + (ROOT / "proto" / source).read_text(encoding="utf-8")


def test_no_stray_generated_files() -> None:
    expected = set()
    for proto_set in regen.PROTO_SETS:
        for source in proto_set.sources:
            stem = Path(source).stem
            expected |= {f"{proto_set.package_dir}/{stem}_pb2.py"}
            expected |= {f"{proto_set.package_dir}/{stem}_pb2.pyi"}
            if _has_services(source):
                expected |= {f"{proto_set.package_dir}/{stem}_puregrpc.py"}
    found = {
        str(path.relative_to(ROOT))
        for proto_set in regen.PROTO_SETS
        for path in (ROOT / proto_set.package_dir).iterdir()
        if path.name.endswith(regen.GENERATED_SUFFIXES)
    }
    assert found == expected


def test_staging_rewrites_only_imports_within_the_set(tmp_path: Path) -> None:
    interop = regen.PROTO_SETS[0]
    staged = regen.stage(interop, ROOT / "proto", tmp_path)
    assert staged == [
        "puregrpc/interop/protos/empty.proto",
        "puregrpc/interop/protos/messages.proto",
        "puregrpc/interop/protos/test.proto",
    ]
    original = (ROOT / "proto/grpc/testing/test.proto").read_text(encoding="utf-8")
    rewritten = (tmp_path / staged[2]).read_text(encoding="utf-8")
    assert 'import "src/proto/grpc/testing/empty.proto";' in original
    assert 'import "puregrpc/interop/protos/empty.proto";' in rewritten
    assert 'import "puregrpc/interop/protos/messages.proto";' in rewritten
    # Nothing else changes: the package, hence every name on the wire, stays.
    assert rewritten.replace("puregrpc/interop/protos/", "src/proto/grpc/testing/") == original
    assert "package grpc.testing;" in rewritten
