"""What reflection answers come from: lookups in a protobuf descriptor pool.

Every lookup raises :class:`NotFoundError` with a message for the client when
the pool does not have what was asked, so the service turns it into one
NOT_FOUND ``ErrorResponse``; protobuf's own ``KeyError`` messages stay here.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

__all__ = ["DescriptorLookup", "NotFoundError"]


class NotFoundError(Exception):
    """The pool has no such file, symbol, type or extension; ``str()`` says which."""


class DescriptorLookup:
    """Finds files in a pool and serializes them, each file once per lookup object.

    The pool only grows and a registered file never changes, so the
    serialized ``FileDescriptorProto`` of a file is cached for the life of
    this object.
    """

    def __init__(self, pool: DescriptorPool) -> None:
        """Look things up in ``pool``."""
        self._pool = pool
        self._serialized: dict[str, bytes] = {}

    # --------------------------------------------------------------- finding

    def file_by_name(self, name: str) -> FileDescriptor:
        """The file registered as ``name`` (``"a/b.proto"``)."""
        try:
            return self._pool.FindFileByName(name)
        except KeyError:
            raise NotFoundError(f"file not found: {name!r}") from None

    def file_containing_symbol(self, symbol: str) -> FileDescriptor:
        """The file declaring ``symbol``: a message, enum, service, method, field...

        ``symbol`` is fully qualified without a leading dot
        (``pkg.Service``, ``pkg.Service.Method``, ``pkg.Outer.Inner``).
        """
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            pass
        # The pool does not index methods by name (upb's does not):
        # look for the service, then for the method in it.
        service_name, _, method_name = symbol.rpartition(".")
        if service_name:
            try:
                service = self._pool.FindServiceByName(service_name)
            except KeyError:
                pass
            else:
                if method_name in service.methods_by_name:
                    return service.file
        raise NotFoundError(f"symbol not found: {symbol!r}")

    def file_containing_extension(self, containing_type: str, number: int) -> FileDescriptor:
        """The file declaring extension field ``number`` of message ``containing_type``."""
        message = self._message(containing_type)
        try:
            extension = self._pool.FindExtensionByNumber(message, number)
        except KeyError:
            raise NotFoundError(
                f"no extension number {number} of {containing_type!r} is known"
            ) from None
        return self._pool.FindFileContainingSymbol(extension.full_name)

    def extension_numbers(self, containing_type: str) -> tuple[str, list[int]]:
        """The full name of ``containing_type`` and its known extension numbers, sorted."""
        message = self._message(containing_type)
        numbers = sorted(field.number for field in self._pool.FindAllExtensions(message))
        return message.full_name, numbers

    def _message(self, name: str) -> Descriptor:
        try:
            return self._pool.FindMessageTypeByName(name)
        except KeyError:
            raise NotFoundError(f"message type not found: {name!r}") from None

    # ---------------------------------------------------------- serializing

    def with_dependencies(self, file: FileDescriptor, sent: set[str]) -> list[bytes]:
        """``file`` and, breadth first, each dependency not in ``sent``, serialized.

        ``file`` itself always comes first, even if sent before: the client
        asked for it. Every file returned is added to ``sent``, so that a
        stream sends each dependency once (reflection.proto allows that).
        """
        answer = [self._serialize(file)]
        sent.add(file.name)
        queue = list(file.dependencies)
        # Bounded by the number of files in the pool: each is queued only
        # while not in ``sent``, and added to ``sent`` when taken.
        while queue:
            dependency = queue.pop(0)
            if dependency.name in sent:
                continue
            sent.add(dependency.name)
            answer.append(self._serialize(dependency))
            queue.extend(dependency.dependencies)
        return answer

    def _serialize(self, file: FileDescriptor) -> bytes:
        data = self._serialized.get(file.name)
        if data is None:
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            data = self._serialized[file.name] = proto.SerializeToString()
        return data
