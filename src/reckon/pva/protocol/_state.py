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
from dataclasses import dataclass

from ._constants import Command
from ._events import (
    ConnectionValidationRequest,
    ConnectionValidationResponse,
)
from ._op_events import (
    CancelRequest,
    ConnectionValidated,
    DestroyRequest,
    GetField,
    GetFieldResponse,
    MonitorAck,
    MonitorDestroy,
    MonitorFinish,
    MonitorStart,
    MonitorStop,
    MonitorUpdate,
)
from ._table import MESSAGES


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

    #: members are singletons: hashed by identity in C (Enum's own hash is a Python call,
    #: paid by every state table lookup and operation check)
    __hash__ = object.__hash__


class ChannelState(enum.Enum):
    CREATING = "creating"
    CONNECTED = "connected"


class RequestState(enum.Enum):
    INIT_PENDING = "init pending"
    READY = "ready"
    EXECUTING = "executing"
    RUNNING = "running"

    #: members are singletons: hashed by identity in C (Enum's own hash is a Python call,
    #: paid by every state table lookup and operation check)
    __hash__ = object.__hash__


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


def _rows(sender: str, init: bool) -> dict[type, Command]:
    """The table's rows of operations that ``sender`` sends: an init's (``init``), else an
    execution's (a row with a ``destroy`` flag) -> their command."""
    return {
        r.event: r.command
        for r in MESSAGES
        if r.sender == sender
        and ("destroy:flag" in r.layout if not init else r.when == "sub & INIT")
    }


#: init request event -> command
INITS = _rows("client", True)
#: init response event -> command
INIT_RESPONSES = _rows("server", True)
#: execute request event -> command (READY -> EXECUTING)
EXECS = _rows("client", False)
#: execute response event -> command (EXECUTING -> READY)
EXEC_RESPONSES = _rows("server", False)


# ----------------------------------------------------------------------------- operations
_R = RequestState
_ANY = frozenset(_R)
_INITIALISED = _ANY - {_R.INIT_PENDING}


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the operation table: what an event on an operation (an ioid) needs and what
    it does. Both sides apply the same row: the client when it sends a request and the server
    when it receives it, the server when it sends a response and the client when it receives
    it; only the error each raises differs (local or remote)."""

    #: the role that sends it
    by: Role
    #: the operation kind it belongs to (None: any kind)
    command: int | None
    #: the states it may come in
    before: frozenset[RequestState]
    #: the state it leads to (None: unchanged)
    after: RequestState | None = None
    #: it ends the operation: always, when its destroy flag is set (an execution's response),
    #: or when its status is a failure (an init's response)
    ends: bool = False
    ends_if_destroy: bool = False
    ends_on_failure: bool = False
    #: a response to an execution the client cancelled meanwhile: dropped, not an error
    drop_if_cancelled: bool = False
    #: an execution in progress goes back to READY, marked cancelled (CancelRequest)
    cancels: bool = False


_C, _S2 = Role.CLIENT, Role.SERVER
#: event type -> its row (the inits, which create an operation, and GetField are not here:
#: they need a free ioid, not a state)
OPERATIONS: dict[type, Step] = {
    **{
        t: Step(_S2, int(c), frozenset({_R.INIT_PENDING}), _R.READY, ends_on_failure=True)
        for t, c in INIT_RESPONSES.items()
    },
    **{t: Step(_C, int(c), frozenset({_R.READY}), _R.EXECUTING) for t, c in EXECS.items()},
    **{
        t: Step(
            _S2,
            int(c),
            frozenset({_R.EXECUTING}),
            _R.READY,
            ends_if_destroy=True,
            drop_if_cancelled=True,
        )
        for t, c in EXEC_RESPONSES.items()
    },
    GetFieldResponse: Step(
        _S2, int(Command.GET_FIELD), frozenset({_R.EXECUTING}), ends=True, drop_if_cancelled=True
    ),
    MonitorStart: Step(_C, int(Command.MONITOR), _INITIALISED, _R.RUNNING),
    MonitorStop: Step(_C, int(Command.MONITOR), _INITIALISED, _R.READY),
    MonitorAck: Step(_C, int(Command.MONITOR), _INITIALISED),
    MonitorDestroy: Step(_C, int(Command.MONITOR), _INITIALISED, ends=True),
    MonitorUpdate: Step(_S2, int(Command.MONITOR), _INITIALISED),
    MonitorFinish: Step(_S2, int(Command.MONITOR), _INITIALISED, ends=True),
    DestroyRequest: Step(_C, None, _ANY, ends=True),
    CancelRequest: Step(_C, None, _ANY, cancels=True),
}
#: the client's messages that open an operation: init request -> command (GetField executes
#: at once: its operation starts EXECUTING)
OPENERS: dict[type, int] = {
    **{t: int(c) for t, c in INITS.items()},
    GetField: int(Command.GET_FIELD),
}
