"""Module docstring."""

import kf_helpers
from kf_helpers import helper

OFFSET = 7
OTHER = 1


def target(x, y=2):
    """Docstring of target."""
    # a comment
    total = helper(x) + OFFSET + y
    return via_attr(total)


def via_attr(v):
    return kf_helpers.scaled(v)


def bystander():
    return OTHER


def ping(n):
    return pong(n - 1) if n > 0 else 0


def pong(n):
    return ping(n - 1) if n > 0 else 1
