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
from ._table import MESSAGES, Row


class _State(enum.Enum):
    #: members are singletons: hashed by identity in C (Enum's own hash is a Python call,
    #: paid by every state table lookup and operation check)
    __hash__ = object.__hash__


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(_State):
    IDLE = "idle"
    VALIDATION_REQUESTED = "validation requested"
    VALIDATION_ANSWERED = "validation answered"
    VALIDATED = "validated"
    CLOSED = "closed"
    ERROR = "error"


class RequestState(_State):
    INIT_PENDING = "init pending"
    READY = "ready"
    EXECUTING = "executing"
    RUNNING = "running"


_S = ConnectionState
#: the handshake's messages by the role that sends them -> {state before: state after}; the
#: side that receives one makes the same transition
_SERVER_SENDS: dict[type, dict[_S, _S]] = {
    ConnectionValidationRequest: {
        _S.IDLE: _S.VALIDATION_REQUESTED,
        _S.VALIDATED: _S.VALIDATION_REQUESTED,
    },
    ConnectionValidated: {_S.VALIDATION_ANSWERED: _S.VALIDATED},
}
_CLIENT_SENDS: dict[type, dict[_S, _S]] = {
    ConnectionValidationResponse: {
        _S.VALIDATION_REQUESTED: _S.VALIDATION_ANSWERED,
        _S.VALIDATED: _S.VALIDATION_ANSWERED,
    }
}
#: role -> (the events it sends, those it receives)
HANDSHAKE = {
    Role.SERVER: (_SERVER_SENDS, _CLIENT_SENDS),
    Role.CLIENT: (_CLIENT_SENDS, _SERVER_SENDS),
}


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
_INIT = "sub & INIT"  # (the rows of inits)


def _derived(r: Row) -> Step | None:
    """The operation table's row that a message table row implies: an init's response
    (INIT_PENDING -> READY), an execution (READY -> EXECUTING) and its response (-> READY)."""
    c = int(r.command)
    if r.sender == "server" and r.when == _INIT:
        return Step(_S2, c, frozenset({_R.INIT_PENDING}), _R.READY, ends_on_failure=True)
    if "destroy:flag" not in r.layout:
        return None
    if r.sender == "client":
        return Step(_C, c, frozenset({_R.READY}), _R.EXECUTING)
    return Step(
        _S2, c, frozenset({_R.EXECUTING}), _R.READY, ends_if_destroy=True, drop_if_cancelled=True
    )


#: event type -> its row (the inits, which create an operation, and GetField are not here:
#: they need a free ioid, not a state)
OPERATIONS: dict[type, Step] = {
    **{r.event: step for r in MESSAGES if (step := _derived(r)) is not None},
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
    **{
        r.event: int(r.command) for r in MESSAGES if r.sender == "client" and r.when == "sub & INIT"
    },
    GetField: int(Command.GET_FIELD),
}
