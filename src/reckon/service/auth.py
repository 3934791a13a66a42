"""Basic authentication: users come from the deployment's ``[auth] users`` table.

Passwords are given in clear (``alice = "secret"``, for tests) or as ``"sha256:<hex>"``. The header
is the HTTP one (``authorization: Basic base64(user:password)``), sent as gRPC metadata or as a
Connect HTTP header, so the same credentials work with grpcurl, curl and reckon clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from reckon.errors import UnauthenticatedError
from reckon.service.context import User


def basic_header(user: str, password: str) -> str:
    """The ``authorization`` header value for ``user``/``password``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class Authenticator:
    """Checks headers against the unit's users; caches good headers (they repeat per caller)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        self._good: dict[str, User] = {}

    def check(self, header: str | None) -> User | None:
        """The user a header names, None without a header; raises on a bad header."""
        if header is None:
            return None
        cached = self._good.get(header)
        if cached is not None:
            return cached
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            raise UnauthenticatedError("authorization header is not 'Basic <base64(user:pass)>'")
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise UnauthenticatedError("authorization header is not valid base64") from None
        if not sep:
            raise UnauthenticatedError("basic credentials must be 'user:password'")
        stored = self._users.get(user)
        if stored is None or not _matches(stored, password):
            raise UnauthenticatedError(f"unknown user or wrong password for {user!r}")
        found = User(user)
        self._good[header] = found
        return found


def _matches(stored: str, password: str) -> bool:
    if stored.startswith("sha256:"):
        digest = hashlib.sha256(password.encode()).hexdigest()
        return hmac.compare_digest(stored[7:], digest)
    return hmac.compare_digest(stored.encode(), password.encode())
