"""Fixtures for the hardware-catalogue tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def write_preset(tmp_path: Path) -> Callable[[dict[str, Any], str], Path]:
    """Write `data` as YAML into a temporary file and return its path."""

    def write(data: dict[str, Any], name: str = "whatif.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
