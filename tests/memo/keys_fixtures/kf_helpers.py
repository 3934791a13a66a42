"""Helpers reached by kf_main.target, through a from-import and through an attribute chain."""

import math

SCALE = 3
UNUSED_CONSTANT = 10


def helper(x):
    return x + 1


def scaled(v):
    return v * SCALE + math.floor(0.5)


def unrelated(x):
    return x - 1
