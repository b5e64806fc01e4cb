"""Shared checks of the CLI tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tessera.cli.errors import USAGE_ERROR


def _check_one_line_error(result, *fragments: str) -> None:  # noqa: ANN001 - click Result
    assert result.exit_code == USAGE_ERROR, result.output
    text = result.output.strip()
    assert "Traceback" not in text and "\n" not in text, text
    assert text.startswith("error: ")
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """Assert a command failed with exit status 2 and one `error:` line holding every
    fragment."""
    return _check_one_line_error
