"""Turn a protoc ``CodeGeneratorRequest`` into ``*_puregrpc.py`` modules.

For every file to generate that declares services, one module next to the
file's ``_pb2`` module, holding per service:

* private :class:`~puregrpc.runtime.Method` constants, one per RPC: the path,
  the call type and the protobuf codecs the runtime needs;
* ``<Service>Stub``: one typed method per RPC, returning the call object of
  its shape (:class:`~puregrpc.client.UnaryUnaryCall` and its siblings) and
  taking a :class:`~puregrpc.client.CallOptions` or its keywords;
* ``<Service>BlockingStub``: the same methods for synchronous code, on a
  :class:`~puregrpc.blocking.BlockingChannel`, returning the response (or an
  iterator of responses) and taking plain iterables of requests;
* ``<Service>Servicer``: a base class whose methods answer UNIMPLEMENTED until
  overridden, and whose ``__puregrpc_handlers__`` gives the server its table.

The output is meant to be checked in and linted like hand-written code: it
passes ``mypy --strict`` and ``ruff check``, and ``ruff format`` leaves it
unchanged. That is why every multi-line construct ends in a trailing comma
(ruff keeps such a construct exploded, whatever its length) and why long
annotations go through short private aliases. The output is deterministic (no
dates, no versions) so that regenerating can be checked byte for byte.
"""

from __future__ import annotations

import keyword
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from ..runtime import Cardinality
from ._descriptors import Comments, TypeIndex, module_name

#: The suffix of generated modules: distinct from grpcio's ``_pb2_grpc``.
SUFFIX = "_puregrpc"
#: The line length the output is laid out for (the project's ruff setting).
LINE_LENGTH = 100

_INDENT = "    "

#: Generic one-line descriptions, when the .proto has no comment on a method.
_CALL_SHAPES = {
    Cardinality.UNARY_UNARY: "one request, one response (``await`` the call)",
    Cardinality.UNARY_STREAM: "one request, a stream of responses (``async for`` over the call)",
    Cardinality.STREAM_UNARY: "a stream of requests, one response (``await`` the call)",
    Cardinality.STREAM_STREAM: "streams of requests and responses, concurrently",
}

#: What a blocking stub's method does, per call type.
_BLOCKING_CALL_SHAPES = {
    Cardinality.UNARY_UNARY: "one request, returns the response",
    Cardinality.UNARY_STREAM: "one request, returns an iterator of the responses",
    Cardinality.STREAM_UNARY: "sends the requests of an iterable, returns the response",
    Cardinality.STREAM_STREAM: "sends the requests while you iterate the responses",
}

#: The blocking call object of the streaming-response call types (puregrpc.blocking).
_BLOCKING_CALL_TYPES = {
    Cardinality.UNARY_STREAM: "BlockingResponseStream",
    Cardinality.STREAM_STREAM: "BlockingBidiCall",
}

#: The call object each call type returns (all in puregrpc.client).
_CALL_TYPES = {
    Cardinality.UNARY_UNARY: "UnaryUnaryCall",
    Cardinality.UNARY_STREAM: "UnaryStreamCall",
    Cardinality.STREAM_UNARY: "StreamUnaryCall",
    Cardinality.STREAM_STREAM: "StreamStreamCall",
}


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Generate the modules of every requested file that has services.

    Problems the user must fix (an unknown plugin parameter, a name that is
    not a valid Python identifier) are reported in the response's ``error``,
    which protoc prints; the plugin itself still exits 0, as plugin.proto asks.
    """
    response = plugin_pb2.CodeGeneratorResponse()
    # Services do not depend on field presence or editions features: any
    # syntax protoc can parse is fine for this generator.
    response.supported_features = (
        plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
        | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
    )
    response.minimum_edition = descriptor_pb2.EDITION_PROTO2
    response.maximum_edition = descriptor_pb2.EDITION_2024
    if request.parameter:
        response.error = (
            f"protoc-gen-puregrpc takes no options, got {request.parameter!r} "
            "(use plain --puregrpc_out=DIR)"
        )
        return response
    index = TypeIndex(request.proto_file)
    by_name = {proto.name: proto for proto in request.proto_file}
    try:
        for name in request.file_to_generate:
            proto = by_name[name]
            if not proto.service:
                continue
            out = response.file.add()
            out.name = module_name(proto.name, SUFFIX).replace(".", "/") + ".py"
            out.content = _FileGenerator(proto, index).render()
    except ValueError as exc:
        del response.file[:]
        response.error = str(exc)
    return response


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rpc:
    """One method of a service, with everything the templates need."""

    service: str  # the service's simple name, e.g. "Echo"
    name: str  # the method name, e.g. "Unary"
    path: str  # "/package.Service/Method"
    cardinality: Cardinality
    request: str  # Python expression naming the request class
    response: str  # Python expression naming the response class
    comment: str  # the .proto comment above the rpc, cleaned

    @property
    def constant(self) -> str:
        """The module-level name of this method's descriptor."""
        return f"_{self.service}_{self.name}"


class _FileGenerator:
    """Renders the ``_puregrpc`` module of one .proto file."""

    def __init__(self, proto: descriptor_pb2.FileDescriptorProto, index: TypeIndex) -> None:
        self._proto = proto
        self._index = index
        self._comments = Comments(proto)
        self._own_module = module_name(proto.name, SUFFIX)
        #: pb2 module name -> the name generated code uses for it.
        self._aliases: dict[str, str] = {}
        self._lines: list[str] = []

    # ------------------------------------------------------------ structure

    def render(self) -> str:
        """The module's source text."""
        services = [
            (index, service, self._rpcs(index, service))
            for index, service in enumerate(self._proto.service)
        ]
        rpcs = [rpc for _, _, service_rpcs in services for rpc in service_rpcs]
        # The file's own _pb2 module registers the service descriptors (for
        # reflection, say) even when the file declares no message types.
        self._own_pb2 = self._alias(module_name(self._proto.name, "_pb2"))
        self._header(rpcs, [service.name for _, service, _ in services])
        self._helpers(rpcs)
        for rpc in rpcs:
            self._method_constant(rpc)
        for index, service, service_rpcs in services:
            self._stub(index, service, service_rpcs)
            self._stub(index, service, service_rpcs, blocking=True)
            self._servicer(index, service, service_rpcs)
        while self._lines[-1] == "":
            self._lines.pop()
        return "\n".join(self._lines) + "\n"

    def _rpcs(
        self, service_index: int, service: descriptor_pb2.ServiceDescriptorProto
    ) -> list[_Rpc]:
        _check_identifier(service.name, f"service {service.name}")
        full_service = self._full_name(service)
        rpcs = []
        for method_index, method in enumerate(service.method):
            _check_identifier(method.name, f"method {full_service}.{method.name}")
            cardinality = {
                (False, False): Cardinality.UNARY_UNARY,
                (False, True): Cardinality.UNARY_STREAM,
                (True, False): Cardinality.STREAM_UNARY,
                (True, True): Cardinality.STREAM_STREAM,
            }[(method.client_streaming, method.server_streaming)]
            rpcs.append(
                _Rpc(
                    service=service.name,
                    name=method.name,
                    path=f"/{full_service}/{method.name}",
                    cardinality=cardinality,
                    request=self._message(method.input_type),
                    response=self._message(method.output_type),
                    comment=self._comments.method(service_index, method_index),
                )
            )
        return rpcs

    def _full_name(self, service: descriptor_pb2.ServiceDescriptorProto) -> str:
        package = self._proto.package
        return f"{package}.{service.name}" if package else service.name

    def _message(self, type_name: str) -> str:
        ref = self._index.resolve(type_name)
        return f"{self._alias(module_name(ref.proto_file, '_pb2'))}.{ref.attribute}"

    def _alias(self, pb2: str) -> str:
        """The name generated code uses for the ``_pb2`` module ``pb2``."""
        alias = self._aliases.get(pb2)
        if alias is None:
            # The module's own name when it is unique here (short lines);
            # protoc's mangled alias (a.b.c_pb2 -> a_dot_b_dot_c__pb2) when
            # two imported files share a base name.
            alias = pb2.rpartition(".")[2]
            if alias in self._aliases.values():
                alias = pb2.replace("_", "__").replace(".", "_dot_")
            self._aliases[pb2] = alias
        return alias

    # --------------------------------------------------------------- header

    def _header(self, rpcs: list[_Rpc], services: list[str]) -> None:
        body = textwrap.fill(
            f"Services: {', '.join(services)}. Call a service through its ``<Service>Stub``"
            " on a ``puregrpc.client.Channel`` (or its ``<Service>BlockingStub`` on a"
            " ``puregrpc.blocking.BlockingChannel``); serve it by subclassing ``<Service>Servicer``"
            " and handing an instance to ``puregrpc.server.Server``.",
            width=LINE_LENGTH - 12,
            break_long_words=False,
        )
        self._docstring(
            f"Generated by protoc-gen-puregrpc from {self._proto.name}. DO NOT EDIT.\n\n{body}",
            "",
        )
        self._emit("")
        self._emit("from __future__ import annotations")
        self._emit("")
        cardinalities = {rpc.cardinality for rpc in rpcs}
        client_streaming = any(c.client_streaming for c in cardinalities)
        server_streaming = any(c.server_streaming for c in cardinalities)
        abc = ["Mapping"]
        if server_streaming:
            abc.append("AsyncIterator")
        if client_streaming:
            abc.append("Iterable")
        typing = ["NoReturn", "Unpack"]
        server = ["MethodHandler", "ServicerContext"]
        if client_streaming:
            server.append("RequestIterator")
        client = ["CallKeywords", "CallOptions", "Channel"]
        client += sorted({_CALL_TYPES[c] for c in cardinalities})
        if client_streaming:
            client.append("Requests")
        stdlib = [_from_import("collections.abc", abc), _from_import("typing", typing)]
        blocking = ["BlockingChannel"]
        blocking += sorted({_BLOCKING_CALL_TYPES[c] for c in cardinalities if c.server_streaming})
        puregrpc = {
            "puregrpc": ["RpcError", "StatusCode"],
            "puregrpc.blocking": blocking,
            "puregrpc.client": client,
            "puregrpc.runtime": ["Cardinality", "Method"],
            "puregrpc.server": server,
        }
        self._imports(stdlib, puregrpc)
        exported = sorted(
            (
                f"{service}{kind}"
                for service in services
                for kind in ("BlockingStub", "Servicer", "Stub")
            ),
            key=_member_key,
        )
        self._lines.extend(_list_assignment("__all__", [f'"{name}"' for name in exported]))
        self._emit("")

    def _imports(self, stdlib: list[list[str]], puregrpc: dict[str, list[str]]) -> None:
        """Emit the import block in the order ruff's isort rules expect.

        Sections: stdlib, third-party, first-party. Which modules are "first
        party" depends on the project the code lands in; we guess as isort
        would for the usual layout, where the generated code lives in the
        project beside its ``_pb2`` modules: those are first party, puregrpc
        is third party (an installed dependency) except for modules generated
        inside puregrpc itself, and ``google.protobuf`` (the well-known types,
        from the protobuf package) is always third party.
        """
        own_top = self._own_module.partition(".")[0]
        sections: dict[str, list[tuple[str, str, list[str]]]] = {"third": [], "first": []}
        in_puregrpc = own_top == "puregrpc"
        for module, names in puregrpc.items():
            sections["first" if in_puregrpc else "third"].append((module, "", names))
        pb2_imports: dict[str, list[str]] = {}
        for pb2, alias in self._aliases.items():
            package, _, base = pb2.rpartition(".")
            first = not pb2.startswith("google.protobuf.")
            section = sections["first" if first else "third"]
            if alias == base and package:
                # Plain ``from package import x_pb2`` imports of one package
                # merge into one statement, as isort would merge them.
                pb2_imports.setdefault(package, [])
                if not pb2_imports[package]:
                    section.append((package, "", pb2_imports[package]))
                pb2_imports[package].append(base)
            elif package:
                section.append((package, alias, [base]))
            else:
                section.append((pb2, alias, []))
        for block in stdlib:
            self._lines.extend(block)
        for key in ("third", "first"):
            entries = sections[key]
            if not entries:
                continue
            self._emit("")
            # isort puts ``import x`` statements before ``from x import y``,
            # each group sorted by module, case-insensitively.
            entries.sort(key=lambda e: (bool(e[2]), e[0].lower(), e[1].lower()))
            for module, alias, names in entries:
                if not names:
                    self._emit(f"import {module}" + (f" as {alias}" if alias != module else ""))
                elif alias:
                    self._emit(f"from {module} import {names[0]} as {alias}")
                else:
                    self._lines.extend(_from_import(module, names))
        self._emit("")

    def _helpers(self, rpcs: list[_Rpc]) -> None:
        self._emit("")
        self._emit("def _unimplemented() -> NoReturn:")
        self._docstring("Fail the call: the servicer does not override this method.", _INDENT)
        self._emit('    raise RpcError(StatusCode.UNIMPLEMENTED, "Method not implemented!")')
        self._emit("")
        self._emit("")

    def _method_constant(self, rpc: _Rpc) -> None:
        self._emit(f"{rpc.constant} = Method(")
        self._emit(f'    path="{rpc.path}",')
        self._emit(f"    cardinality=Cardinality.{rpc.cardinality.name},")
        self._emit(f"    request_serializer={rpc.request}.SerializeToString,")
        self._emit(f"    request_deserializer={rpc.request}.FromString,")
        self._emit(f"    response_serializer={rpc.response}.SerializeToString,")
        self._emit(f"    response_deserializer={rpc.response}.FromString,")
        self._emit(")")
        self._emit("")

    # ----------------------------------------------------------------- stub

    def _stub(
        self,
        index: int,
        service: descriptor_pb2.ServiceDescriptorProto,
        rpcs: list[_Rpc],
        *,
        blocking: bool = False,
    ) -> None:
        full = self._full_name(service)
        self._emit("")
        if blocking:
            self._emit(f"class {service.name}BlockingStub:")
            summary = f"Blocking client stub of ``{full}``, for synchronous code."
            channel = "BlockingChannel"
        else:
            self._emit(f"class {service.name}Stub:")
            summary = f"Client stub of ``{full}``."
            channel = "Channel"
        self._docstring(_join(summary, self._comments.service(index)), _INDENT)
        self._emit("")
        self._emit(f"    def __init__(self, channel: {channel}) -> None:")
        self._docstring("Make calls over ``channel``.", _INDENT * 2)
        self._emit("        self._channel = channel")
        for rpc in rpcs:
            self._emit("")
            self._stub_method(rpc, blocking=blocking)
        self._emit("")

    def _stub_method(self, rpc: _Rpc, *, blocking: bool) -> None:
        i1, i2, i3 = _INDENT, _INDENT * 2, _INDENT * 3
        cardinality = rpc.cardinality
        if cardinality.client_streaming:
            if blocking:
                kind = "Iterable"
                optional = cardinality.server_streaming  # a bidi call can send later
            else:
                kind, optional = "Requests", True
            first = f"requests: {kind}[{rpc.request}]" + (" | None = None" if optional else "")
            argument = "requests"
        else:
            first = f"request: {rpc.request}"
            argument = "request"
        self._emit(f"{i1}def {rpc.name}(")
        for parameter in (
            "self",
            first,
            "*",
            "options: CallOptions | None = None",
            "**keywords: Unpack[CallKeywords]",
        ):
            self._emit(f"{i2}{parameter},")
        if not blocking:
            returns = f"{_CALL_TYPES[cardinality]}[{rpc.request}, {rpc.response}]"
            shape = _CALL_SHAPES[cardinality]
        elif cardinality.server_streaming:
            returns = f"{_BLOCKING_CALL_TYPES[cardinality]}[{rpc.request}, {rpc.response}]"
            shape = _BLOCKING_CALL_SHAPES[cardinality]
        else:
            returns = rpc.response
            shape = _BLOCKING_CALL_SHAPES[cardinality]
        self._returns(i1, returns)
        self._docstring(rpc.comment or f"Call ``{rpc.path}``: {shape}.", i2)
        self._emit(f"{i2}return self._channel.{cardinality.value}(")
        for argument_text in (rpc.constant, argument, "options=options", "**keywords"):
            self._emit(f"{i3}{argument_text},")
        self._emit(f"{i2})")

    # ------------------------------------------------------------- servicer

    def _servicer(
        self, index: int, service: descriptor_pb2.ServiceDescriptorProto, rpcs: list[_Rpc]
    ) -> None:
        full = self._full_name(service)
        i1, i2, i3, i4 = _INDENT, _INDENT * 2, _INDENT * 3, _INDENT * 4
        self._emit("")
        self._emit(f"class {service.name}Servicer:")
        summary = (
            f"Base class of ``{full}`` servers: override the methods you serve.\n\n"
            "Methods not overridden answer UNIMPLEMENTED."
        )
        self._docstring(_join(summary, self._comments.service(index)), i1)
        self._emit("")
        self._emit(f"{i1}#: The service's descriptor; importing this module registers it.")
        self._emit(
            f'{i1}DESCRIPTOR = {self._own_pb2}.DESCRIPTOR.services_by_name["{service.name}"]'
        )
        for rpc in rpcs:
            self._emit("")
            self._servicer_method(rpc)
        self._emit("")
        self._emit(f"{i1}def __puregrpc_handlers__(self) -> Mapping[str, MethodHandler]:")
        self._docstring("The server's table of this service: method path -> handler.", i2)
        if not rpcs:
            self._emit(f"{i2}return {{}}")
            self._emit("")
            return
        self._emit(f"{i2}return {{")
        for rpc in rpcs:
            self._emit(f'{i3}"{rpc.path}": MethodHandler(')
            self._emit(f"{i4}method={rpc.constant},")
            self._emit(f"{i4}func=self.{rpc.name},")
            self._emit(f"{i3}),")
        self._emit(f"{i2}}}")
        self._emit("")

    def _servicer_method(self, rpc: _Rpc) -> None:
        i1, i2 = _INDENT, _INDENT * 2
        self._emit(f"{i1}async def {rpc.name}(")
        self._emit(f"{i2}self,")
        if rpc.cardinality.client_streaming:
            self._emit(f"{i2}requests: RequestIterator[{rpc.request}],")
        else:
            self._emit(f"{i2}request: {rpc.request},")
        self._emit(f"{i2}context: ServicerContext,")
        if rpc.cardinality.server_streaming:
            self._returns(i1, f"AsyncIterator[{rpc.response}]")
        else:
            self._returns(i1, rpc.response)
        self._docstring(
            rpc.comment or f"Serve ``{rpc.path}``; the default answers UNIMPLEMENTED.", i2
        )
        if rpc.cardinality.server_streaming:
            # ``yield`` makes this an async generator, the shape overrides
            # have too; the call fails before anything is yielded.
            self._emit(f"{i2}yield _unimplemented()")
        else:
            self._emit(f"{i2}_unimplemented()")

    # -------------------------------------------------------------- helpers

    def _emit(self, line: str) -> None:
        self._lines.append(line)

    def _returns(self, indent: str, annotation: str) -> None:
        """Close a def whose parameters were exploded: ``) -> annotation:``.

        Laid out as ruff format would: on one line if it fits; otherwise the
        subscript's contents go on their own line, or one per line (with a
        trailing comma) if even that is too long.
        """
        line = f"{indent}) -> {annotation}:"
        if len(line) <= LINE_LENGTH or "[" not in annotation:
            self._emit(line)
            return
        head, _, rest = annotation.partition("[")
        inner = rest[: -len("]")]
        self._emit(f"{indent}) -> {head}[")
        inner_indent = indent + _INDENT
        if len(inner_indent + inner) <= LINE_LENGTH:
            self._emit(inner_indent + inner)
        else:
            for part in inner.split(", "):
                self._emit(f"{inner_indent}{part},")
        self._emit(f"{indent}]:")

    def _docstring(self, text: str, indent: str) -> None:
        """Emit ``text`` as a docstring that ruff format leaves as it is."""
        text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        if text.endswith('"'):
            text = text[:-1] + '\\"'
        width = LINE_LENGTH - len(indent)
        lines: list[str] = []
        for line in text.splitlines():
            if len(line) + 6 <= width:
                lines.append(line)
                continue
            # Comments wider than the line length are rewrapped (keeping
            # their indentation) so that the generated module lints clean.
            stripped = line.lstrip()
            lead = line[: len(line) - len(stripped)]
            lines.extend(
                textwrap.wrap(
                    stripped,
                    width=width - 6,
                    initial_indent=lead,
                    subsequent_indent=lead,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        if len(lines) == 1:
            self._emit(f'{indent}"""{lines[0]}"""')
            return
        self._emit(f'{indent}"""{lines[0]}')
        for line in lines[1:]:
            self._emit(f"{indent}{line}" if line else "")
        self._emit(f'{indent}"""')


def _join(summary: str, comment: str) -> str:
    return f"{summary}\n\n{comment}" if comment else summary


def _from_import(module: str, names: Iterable[str]) -> list[str]:
    """``from module import a, b`` with names in isort's order, wrapped if long."""
    ordered = sorted(names, key=_member_key)
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"from {module} import (", *(f"{_INDENT}{name}," for name in ordered), ")"]


def _list_assignment(name: str, items: list[str]) -> list[str]:
    """``name = [a, b]`` on one line if it fits, else one item per line."""
    line = f"{name} = [{', '.join(items)}]"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"{name} = [", *(f"{_INDENT}{item}," for item in items), "]"]


def _member_key(name: str) -> tuple[int, str]:
    # isort's "order by type": CONSTANTS, then Classes, then everything else.
    if name.isupper() and len(name) > 1:
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    return kind, name.lower()


def _check_identifier(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{what}: {name!r} is not usable as a Python identifier")
