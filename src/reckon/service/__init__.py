"""Services: defined once in a .proto, implemented in Python or any gRPC language, placed by a
deployment file in-process, in child processes or at remote addresses.

Calling code is the same for every placement: ``ctx.locate(Catalog)`` (or ``unit.locate``) returns
a client shaped like the generated ``CatalogAsyncStub``. See docs/service.md.
"""

from reckon.service.auth import basic_header
from reckon.service.base import Service
from reckon.service.batteries import Database, FileArea, Query
from reckon.service.context import CallContext, ServiceContext, User
from reckon.service.definition import MethodDef, ServiceDef
from reckon.service.deploy import Deployment, Plan, plan
from reckon.service.interceptors import Interceptor
from reckon.service.kernel import Unit
from reckon.service.logs import JsonSink, LogRecord, MemorySink, ServiceLogger
from reckon.service.memo import memoized_rpc, request_key

__all__ = [
    "CallContext",
    "Database",
    "Deployment",
    "FileArea",
    "Interceptor",
    "JsonSink",
    "LogRecord",
    "MemorySink",
    "MethodDef",
    "Plan",
    "Query",
    "Service",
    "ServiceContext",
    "ServiceDef",
    "ServiceLogger",
    "Unit",
    "User",
    "basic_header",
    "memoized_rpc",
    "plan",
    "request_key",
]
