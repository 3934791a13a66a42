"""Vinny's Vintage Vinyl: the Python services of the record shop example."""
