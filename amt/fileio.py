"""Atomic file and folder writes for the core and front ends (see ``amt.tokenization.fileio``).

The writers live in tokenization, which uses them and imports nothing from the core; this module is the name
the rest of amt imports them by.
"""

from amt.tokenization.fileio import atomic_directory, atomic_paths, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_directory", "atomic_paths", "atomic_write_bytes", "atomic_write_text"]
