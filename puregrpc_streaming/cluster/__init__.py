"""Several puregrpc-streaming instances behind nginx, on one machine (docs/cluster.md).

* :class:`Nginx` and :func:`render_config`: nginx's ``grpc_pass`` balancing
  calls over the instances, its config and every file it writes in one
  directory;
* :func:`run_instance` / :class:`ServiceInstance`: one ``puregrpc-streaming
  serve`` process, stopped with SIGTERM at the block's end, or killed;
* :class:`LocalRedis`, :class:`LocalPostgres`: Debian's redis-server and
  PostgreSQL on free loopback ports in temporary directories (the tests'
  Redis and PostgreSQL too), :func:`redis_unavailable` and
  :func:`postgres_unavailable` saying why one cannot run here;
* :class:`UpstreamRecorder`: a client interceptor noting which instance
  nginx sent each call to.

``python -m puregrpc_streaming.demo_cluster`` (``make demo-cluster``) puts
them together.
"""

from __future__ import annotations

from ._engines import LocalPostgres as LocalPostgres
from ._engines import LocalRedis as LocalRedis
from ._engines import missing_packages as missing_packages
from ._engines import postgres_bindir as postgres_bindir
from ._engines import postgres_unavailable as postgres_unavailable
from ._engines import redis_unavailable as redis_unavailable
from ._instance import ServiceInstance as ServiceInstance
from ._instance import run_instance as run_instance
from ._instance import serve_command as serve_command
from ._nginx import NO_UPSTREAM_MESSAGE as NO_UPSTREAM_MESSAGE
from ._nginx import UPSTREAM_HEADER as UPSTREAM_HEADER
from ._nginx import UPSTREAM_TIMEOUT_MESSAGE as UPSTREAM_TIMEOUT_MESSAGE
from ._nginx import Nginx as Nginx
from ._nginx import NginxError as NginxError
from ._nginx import NginxSettings as NginxSettings
from ._nginx import find_nginx as find_nginx
from ._nginx import render_config as render_config
from ._upstream import CallRecord as CallRecord
from ._upstream import UpstreamRecorder as UpstreamRecorder

__all__ = [
    "NO_UPSTREAM_MESSAGE",
    "UPSTREAM_HEADER",
    "UPSTREAM_TIMEOUT_MESSAGE",
    "CallRecord",
    "LocalPostgres",
    "LocalRedis",
    "Nginx",
    "NginxError",
    "NginxSettings",
    "ServiceInstance",
    "UpstreamRecorder",
    "find_nginx",
    "missing_packages",
    "postgres_bindir",
    "postgres_unavailable",
    "redis_unavailable",
    "render_config",
    "run_instance",
    "serve_command",
]
