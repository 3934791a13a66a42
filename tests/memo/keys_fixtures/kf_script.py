"""Run as __main__: prints the fingerprint of its own function."""

import sys

from reckon.memo.fingerprint import fingerprint

LIMIT = 5


def work(n):
    return [i * i for i in range(min(n, LIMIT))]


if __name__ == "__main__":
    sys.stdout.write(fingerprint(work).hex())
