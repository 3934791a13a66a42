"""Status: the outcome carried by responses (OK is the single byte 0xFF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._constants import StatusType
from ._errors import LocalProtocolError


@dataclass(frozen=True, slots=True)
class Status:
    """``Status.OK``, or a type (warning, error, fatal) with a message and a call tree."""

    type: StatusType = StatusType.OK
    message: str = ""
    call_tree: str = ""

    OK: ClassVar[Status]

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "type", StatusType(self.type))
        except ValueError:
            raise LocalProtocolError(f"status type must be 0..3, not {self.type!r}") from None
        if not isinstance(self.message, str) or not isinstance(self.call_tree, str):
            raise LocalProtocolError("status message and call tree are strings")

    @property
    def success(self) -> bool:
        """OK and WARNING carry a result after them on the wire; ERROR and FATAL do not."""
        return self.type <= StatusType.WARNING

    @classmethod
    def error(cls, message: str, call_tree: str = "") -> Status:
        return cls(StatusType.ERROR, message, call_tree)


Status.OK = Status()
