"""Output paths given on the command line, checked before the work that fills them."""

from __future__ import annotations

import os
from pathlib import Path

from tessera.cli.errors import fail


def check_writable(path: Path, option: str) -> None:
    """A one-line error now, rather than after minutes of work, when `path` cannot be
    written: its folder is missing or read-only, or it names a folder."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise fail(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise fail(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise fail(f"{option} {path}: not writable")
