"""The trace of every call in a unit, rendered as byte-stable JSON lines.

Each line holds the virtual time, caller, callee, method, the request and the response (or the
error code and message), with messages in canonical JSON (field names as in the .proto, keys
sorted). Under the virtual-time loop the order and the times are the same on every run, so two
runs of the same test produce byte-identical traces.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from reckon.errors import ServiceCallError


def message_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


class Trace:
    """A tracer for :class:`reckon.service.Unit`: ``lines`` grows by one line per call."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def record(
        self,
        caller: str,
        callee: str,
        method: str,
        request: Message | list[Message],
        response: Message | list[Message] | None,
        error: ServiceCallError | None,
        start: float,
        end: float,
    ) -> None:
        entry: dict[str, Any] = {
            "start": round(start, 9),
            "end": round(end, 9),
            "caller": caller,
            "callee": callee,
            "method": method,
        }
        # A stream is a list of its messages, in order ("requests"/"responses").
        if isinstance(request, list):
            entry["requests"] = [message_dict(m) for m in request]
        else:
            entry["request"] = message_dict(request)
        if isinstance(response, list):
            entry["responses"] = [message_dict(m) for m in response]
        if error is not None:
            entry["error"] = {"code": error.code, "message": str(error)}
        elif response is not None and not isinstance(response, list):
            entry["response"] = message_dict(response)
        self.lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)
