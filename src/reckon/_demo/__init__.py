"""The acts of ``reckon demo``, one small module each; :mod:`reckon.demo` runs them in order."""
