"""Suite-wide fixtures: tests never read or write the user's cache folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # tuning and SIMULATED estimates are cached on disk (tessera.cost.cache); a suite that
    # shared ~/.cache/tessera would depend on earlier runs and litter the user's home
    mp = pytest.MonkeyPatch()
    mp.setenv("TESSERA_CACHE_DIR", str(tmp_path_factory.mktemp("tessera-cache")))
    yield
    mp.undo()
