"""reckon: expensive computations, done once.

The public face. Everything a user needs for everyday work is importable from here; the layers
(``reckon.core``, ``reckon.memo``, ``reckon.observe``, ``reckon.pva``, ``reckon.service``) hold
the rest.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
