"""Numbers of the wire protocol: commands, header flags, severities (the subcommand bits and
the search flags are the message table's, in ``_table.py``)."""

from __future__ import annotations

import enum

MAGIC = 0xCA
#: The version byte we put in headers (pvxs sends 2; peers only check it is non-zero).
PROTOCOL_VERSION = 2
HEADER_SIZE = 8


class Command(enum.IntEnum):
    """Application message commands (header byte 3 when the control flag is clear)."""

    BEACON = 0x00
    CONNECTION_VALIDATION = 0x01
    ECHO = 0x02
    SEARCH = 0x03
    SEARCH_RESPONSE = 0x04
    AUTHNZ = 0x05
    ACL_CHANGE = 0x06
    CREATE_CHANNEL = 0x07
    DESTROY_CHANNEL = 0x08
    CONNECTION_VALIDATED = 0x09
    GET = 0x0A
    PUT = 0x0B
    PUT_GET = 0x0C
    MONITOR = 0x0D
    ARRAY = 0x0E
    DESTROY_REQUEST = 0x0F
    PROCESS = 0x10
    GET_FIELD = 0x11
    MESSAGE = 0x12
    MULTIPLE_DATA = 0x13
    RPC = 0x14
    CANCEL_REQUEST = 0x15
    ORIGIN_TAG = 0x16


class ControlCommand(enum.IntEnum):
    """Control message commands (header byte 3 when the control flag is set)."""

    MARK_TOTAL_BYTES_SENT = 0x00
    ACK_TOTAL_BYTES_RECEIVED = 0x01
    SET_BYTE_ORDER = 0x02
    ECHO_REQUEST = 0x03
    ECHO_RESPONSE = 0x04


class Flags(enum.IntFlag):
    """Header flag bits."""

    CONTROL = 0x01
    SEGMENT_FIRST = 0x10
    SEGMENT_LAST = 0x20
    SEGMENT_MIDDLE = 0x30
    SEGMENT_MASK = 0x30
    FROM_SERVER = 0x40
    BIG_ENDIAN = 0x80


class StatusType(enum.IntEnum):
    """Severity of a :class:`~reckon.pva.protocol.Status`."""

    OK = 0
    WARNING = 1
    ERROR = 2
    FATAL = 3


class MessageSeverity(enum.IntEnum):
    """Severity of a CMD_MESSAGE text sent to the peer."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    FATAL = 3
