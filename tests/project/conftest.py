"""The project tests' fixtures: the release's sdist and wheel, built once per session."""

from __future__ import annotations

import pytest

from tests.project.release import Built, build


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist and the wheel :func:`~tests.project.release.build` makes from the checkout."""
    return build(tmp_path_factory.mktemp("built"))
