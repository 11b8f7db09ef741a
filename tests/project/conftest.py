"""The project tests' fixtures: the release's sdist and wheel, built once per run, and the one
virtualenv they are installed into (xdist's workers share both: :func:`tests.project.release.shared`)."""

from __future__ import annotations

import pytest

from tests.project.release import Built, Installed, build, install, shared


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist and the wheel :func:`~tests.project.release.build` makes from the checkout."""
    with shared(tmp_path_factory, "built") as where:
        return build(where)


@pytest.fixture(scope="session")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel in a fresh virtualenv, what it ran there plain, then with its server extra."""
    with shared(tmp_path_factory, "venv") as where:
        return install(where, built)
