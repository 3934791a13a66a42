"""The protocol library's own error hierarchy.

It imports nothing of reckon: callers that want reckon's hierarchy wrap these at their boundary.
Following h11, one internal decode error becomes :class:`RemoteProtocolError` where bytes enter
a connection, and a connection that raised it stays broken (the error is sticky).
"""

from __future__ import annotations

import struct


class ProtocolError(Exception):
    """Base of every error this package raises on purpose."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol (or the connection state) forbids.

    The connection is left untouched, so the caller can fix its request and go on.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes we cannot accept: malformed, out of order or over a limit.

    A transport should log it and drop the peer; other connections are unaffected.
    """


class DecodeError(RemoteProtocolError):
    """Bytes that do not parse: truncated, bad magic, bad type code, bad selector..."""


class LimitExceededError(RemoteProtocolError):
    """A well-formed message that breaks a configured limit (size, nesting, channels)."""


#: what decoding malformed bytes raises below our own checks (UnicodeDecodeError is a
#: ValueError): a connection or discovery turns it into DecodeError
LOW_LEVEL_ERRORS = (IndexError, KeyError, ValueError, OverflowError, struct.error)
