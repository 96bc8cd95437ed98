"""Kiln's compile driver: builds one `.pt2` for one hardware target with AOTInductor, in a sandboxed subprocess."""

__version__ = "0.1.0"
