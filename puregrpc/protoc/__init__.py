"""puregrpc.protoc: generate puregrpc service code from .proto files.

``python -m puregrpc.protoc -I proto --python_out=out --pyi_out=out
--puregrpc_out=out proto/x.proto`` runs protoc (from grpcio-tools) with the
``protoc-gen-puregrpc`` plugin, which writes ``x_puregrpc.py`` next to
protoc's ``x_pb2.py``: a typed ``<Service>Stub`` and ``<Service>Servicer`` per
service. The plugin is also installed as the ``protoc-gen-puregrpc`` command,
for use with any protoc.
"""

from ._generator import generate as generate
from ._plugin import main as plugin_main
from ._runner import run_protoc as run_protoc

__all__ = ["generate", "plugin_main", "run_protoc"]
