"""What the generator needs to know about the .proto files in a request.

protoc hands a plugin every file it parsed as a ``FileDescriptorProto``
(``plugin.proto``): the files to generate and, before them, everything they
import. From those this module answers three questions:

* which Python module holds a file's messages, named the way protoc's own
  ``--python_out`` names it (``a/b-c.proto`` -> ``a.b_c_pb2``);
* which file and Python attribute a fully-qualified message name such as
  ``.pkg.Outer.Inner`` refers to (``Outer.Inner`` in that file's module);
* what comment, if any, the author wrote above a service or method
  (``SourceCodeInfo``, present for the files being generated).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

# Field numbers of the descriptor.proto fields that SourceCodeInfo paths use:
# FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2.
_FILE_SERVICE = 6
_SERVICE_METHOD = 2


def module_name(proto_file: str, suffix: str) -> str:
    """The dotted module name protoc's Python generator derives from a file name.

    ``google/protobuf/empty.proto`` with ``_pb2`` gives
    ``google.protobuf.empty_pb2``; dashes become underscores, as protoc does.
    """
    stem = proto_file.removesuffix(".proto").replace("-", "_")
    return stem.replace("/", ".") + suffix


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRef:
    """Where a message type lives, for Python code that names it."""

    #: The .proto file that defines the message.
    proto_file: str
    #: The attribute path inside that file's ``_pb2`` module (``Outer.Inner``).
    attribute: str


class TypeIndex:
    """Fully-qualified message name -> :class:`MessageRef`, over all files of a request."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self._refs: dict[str, MessageRef] = {}
        for proto in files:
            prefix = f".{proto.package}" if proto.package else ""
            self._add(proto.name, prefix, "", proto.message_type)

    def _add(
        self,
        proto_file: str,
        scope: str,
        attribute_scope: str,
        messages: Iterable[descriptor_pb2.DescriptorProto],
    ) -> None:
        for message in messages:
            full_name = f"{scope}.{message.name}"
            attribute = f"{attribute_scope}{message.name}"
            self._refs[full_name] = MessageRef(proto_file=proto_file, attribute=attribute)
            # Nested messages are attributes of their parent's class.
            self._add(proto_file, full_name, f"{attribute}.", message.nested_type)

    def resolve(self, type_name: str) -> MessageRef:
        """The message a method's ``input_type``/``output_type`` names.

        protoc always sends resolved, fully-qualified names (leading dot), so
        a miss means a malformed request rather than a user mistake.
        """
        try:
            return self._refs[type_name]
        except KeyError:
            raise ValueError(f"message type {type_name} is not defined in any file") from None


class Comments:
    """The leading comments of one file's services and methods, from SourceCodeInfo."""

    def __init__(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path: dict[tuple[int, ...], str] = {}
        for location in proto.source_code_info.location:
            if location.leading_comments:
                self._by_path[tuple(location.path)] = location.leading_comments

    def service(self, service_index: int) -> str:
        """The comment above ``service`` number ``service_index``, cleaned ("" if none)."""
        return _clean(self._by_path.get((_FILE_SERVICE, service_index), ""))

    def method(self, service_index: int, method_index: int) -> str:
        """The comment above one ``rpc`` of a service, cleaned ("" if none)."""
        path = (_FILE_SERVICE, service_index, _SERVICE_METHOD, method_index)
        return _clean(self._by_path.get(path, ""))


def _clean(comment: str) -> str:
    # Comments arrive with the space after ``//`` on every line; dedent them
    # and drop blank edges so they read as a docstring body.
    lines = [line.rstrip() for line in comment.expandtabs(4).splitlines()]
    return textwrap.dedent("\n".join(lines)).strip("\n")
