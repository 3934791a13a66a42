"""Transition tables: which events each side may send or receive in each state.

Handshake (the same state names on both sides)::

    server: IDLE --send ConnectionValidationRequest--> VALIDATION_REQUESTED
            --recv ConnectionValidationResponse--> VALIDATION_ANSWERED
            --send ConnectionValidated(success)--> VALIDATED
    client: IDLE --recv ConnectionValidationRequest--> VALIDATION_REQUESTED
            --send ConnectionValidationResponse--> VALIDATION_ANSWERED
            --recv ConnectionValidated(success)--> VALIDATED

Operations (per ioid)::

    INIT_PENDING --init response (success)--> READY --exec--> EXECUTING --response--> READY
    READY --MonitorStart--> RUNNING --MonitorStop--> READY
    any --DestroyRequest / MonitorFinish / response to a "destroy" exec--> (gone)
"""

from __future__ import annotations

import enum

from ._constants import Command
from ._events import (
    RPC,
    ArrayGet,
    ArrayGetLength,
    ArrayGetLengthResponse,
    ArrayGetResponse,
    ArrayInit,
    ArrayInitResponse,
    ArrayPut,
    ArrayPutResponse,
    ArraySetLength,
    ArraySetLengthResponse,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    MonitorInit,
    MonitorInitResponse,
    Process,
    ProcessInit,
    ProcessInitResponse,
    ProcessResponse,
    Put,
    PutGet,
    PutGetInit,
    PutGetInitResponse,
    PutGetRead,
    PutGetReadResponse,
    PutGetResponse,
    PutInit,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
)


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(enum.Enum):
    IDLE = "idle"
    VALIDATION_REQUESTED = "validation requested"
    VALIDATION_ANSWERED = "validation answered"
    VALIDATED = "validated"
    CLOSED = "closed"
    ERROR = "error"


class ChannelState(enum.Enum):
    CREATING = "creating"
    CONNECTED = "connected"


class RequestState(enum.Enum):
    INIT_PENDING = "init pending"
    READY = "ready"
    EXECUTING = "executing"
    RUNNING = "running"


_S = ConnectionState
#: (role, direction, event type) -> {state before: state after}
HANDSHAKE: dict[tuple[Role, str, type], dict[ConnectionState, ConnectionState]] = {
    (Role.SERVER, "send", ConnectionValidationRequest): {
        _S.IDLE: _S.VALIDATION_REQUESTED,
        _S.VALIDATED: _S.VALIDATION_REQUESTED,
    },
    (Role.SERVER, "recv", ConnectionValidationResponse): {
        _S.VALIDATION_REQUESTED: _S.VALIDATION_ANSWERED,
        _S.VALIDATED: _S.VALIDATION_ANSWERED,
    },
    (Role.SERVER, "send", ConnectionValidated): {_S.VALIDATION_ANSWERED: _S.VALIDATED},
    (Role.CLIENT, "recv", ConnectionValidationRequest): {
        _S.IDLE: _S.VALIDATION_REQUESTED,
        _S.VALIDATED: _S.VALIDATION_REQUESTED,
    },
    (Role.CLIENT, "send", ConnectionValidationResponse): {
        _S.VALIDATION_REQUESTED: _S.VALIDATION_ANSWERED
    },
    (Role.CLIENT, "recv", ConnectionValidated): {_S.VALIDATION_ANSWERED: _S.VALIDATED},
}

#: init request event -> command
INITS: dict[type, Command] = {
    GetInit: Command.GET,
    PutInit: Command.PUT,
    PutGetInit: Command.PUT_GET,
    MonitorInit: Command.MONITOR,
    ArrayInit: Command.ARRAY,
    ProcessInit: Command.PROCESS,
    RPCInit: Command.RPC,
}
#: init response event -> command
INIT_RESPONSES: dict[type, Command] = {
    GetInitResponse: Command.GET,
    PutInitResponse: Command.PUT,
    PutGetInitResponse: Command.PUT_GET,
    MonitorInitResponse: Command.MONITOR,
    ArrayInitResponse: Command.ARRAY,
    ProcessInitResponse: Command.PROCESS,
    RPCInitResponse: Command.RPC,
}
#: execute request event -> command (READY -> EXECUTING)
EXECS: dict[type, Command] = {
    Get: Command.GET,
    Put: Command.PUT,
    PutRead: Command.PUT,
    PutGet: Command.PUT_GET,
    PutGetRead: Command.PUT_GET,
    ArrayGet: Command.ARRAY,
    ArrayPut: Command.ARRAY,
    ArraySetLength: Command.ARRAY,
    ArrayGetLength: Command.ARRAY,
    Process: Command.PROCESS,
    RPC: Command.RPC,
}
#: execute response event -> command (EXECUTING -> READY)
EXEC_RESPONSES: dict[type, Command] = {
    GetResponse: Command.GET,
    PutResponse: Command.PUT,
    PutReadResponse: Command.PUT,
    PutGetResponse: Command.PUT_GET,
    PutGetReadResponse: Command.PUT_GET,
    ArrayGetResponse: Command.ARRAY,
    ArrayPutResponse: Command.ARRAY,
    ArraySetLengthResponse: Command.ARRAY,
    ArrayGetLengthResponse: Command.ARRAY,
    ProcessResponse: Command.PROCESS,
    RPCResponse: Command.RPC,
}
