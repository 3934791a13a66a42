"""A fake installed distribution: copied to <tmp>/site-packages/fakepkg/__init__.py."""

FACTOR = 2


def compute(x):
    return x * FACTOR
