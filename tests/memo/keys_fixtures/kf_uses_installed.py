"""User code calling into the fake installed distribution."""

import fakepkg


def f(x):
    return fakepkg.compute(x) + 1
