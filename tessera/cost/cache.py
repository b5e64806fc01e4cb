"""The cost layer's disk cache: JSON files of results keyed by kernel, shapes, dtype and chip.

Tuned block sizes (`tune.json`) and SIMULATED estimates (`cost.json`) are stored under
`cache_dir()`, each entry with a fingerprint of the kernel's source and of the model that
timed it (nki, sim, calibration and hardware presets): an entry whose fingerprint differs is
ignored and replaced.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tessera.kernels.registry import KernelDef

ENV_CACHE_DIR = "TESSERA_CACHE_DIR"
CACHE_SCHEMA = 1


def cache_dir() -> Path:
    """Tessera's cache folder: $TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera, else
    ~/.cache/tessera (created on first write)."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tessera"


class JsonCache:
    """A JSON file of entries keyed by text, each tagged with the fingerprint it is valid for.

    Writes re-read the file and replace it atomically, so concurrent writers lose at most
    each other's newest entries, never the file. An unreadable file counts as empty.
    """

    def __init__(self, name: str) -> None:
        self.path = cache_dir() / name

    def _load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str, fingerprint: str) -> dict | None:
        """The payload stored under `key`, if it was stored for this `fingerprint`."""
        entry = self._load().get(key)
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
            return None
        payload = entry.get("value")
        return payload if isinstance(payload, dict) else None

    def put(self, key: str, fingerprint: str, payload: dict) -> None:
        """Store `payload` under `key` (replacing any entry, stale or not)."""
        entries = self._load()
        entries[key] = {"fingerprint": fingerprint, "value": payload}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"schema": CACHE_SCHEMA, "entries": entries}, f, indent=1,
                          sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def cache_key(name: str, shapes: Mapping[str, int], dtype: str, chip: str) -> str:
    """`name|K=..,M=..|dtype|chip`, with the shapes sorted by name."""
    return "|".join([name, ",".join(f"{k}={shapes[k]}" for k in sorted(shapes)), dtype, chip])


_PACKAGE = Path(__file__).resolve().parents[1]
_MODEL_PARTS = (("nki", "*.py"), ("sim", "*.py"), ("sim/calibration", "*.yaml"),
                ("hw", "*.py"), ("hw/presets", "*.yaml"))


@functools.cache
def model_fingerprint() -> str:
    """Hash of everything that turns a kernel into a time: the kernel language (what it
    records), the timing model and its calibration, and the hardware presets."""
    digest = hashlib.sha256()
    for folder, pattern in _MODEL_PARTS:
        for path in sorted((_PACKAGE / folder).rglob(pattern)):
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kernel_fingerprint(defn: KernelDef) -> str:
    """Hash of the kernel's module source, its tunables/defaults and `model_fingerprint()`."""
    fn = getattr(defn.kernel, "fn", defn.kernel)
    digest = hashlib.sha256(model_fingerprint().encode())
    digest.update(f"{defn.name}|{getattr(fn, '__qualname__', '')}".encode())
    digest.update(repr(sorted((k, tuple(v)) for k, v in defn.tunables.items())).encode())
    digest.update(repr(sorted(defn.defaults.items())).encode())
    try:
        source = inspect.getsourcefile(fn)
        digest.update(Path(source).read_bytes() if source else b"")
    except (TypeError, OSError):
        digest.update(b"<no source>")
    return digest.hexdigest()[:16]
