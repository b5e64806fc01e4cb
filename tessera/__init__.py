"""Tessera: an open software stack for Trainium-class accelerators."""
__version__ = "0.1.0"
