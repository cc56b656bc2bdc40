"""Every test reads the KTSTR_* settings afresh.

ktstr.settings reads the environment once per process; a test that sets a variable
(monkeypatch.setenv("KTSTR_CACHE_DIR", ...)) must not see the value an earlier test
left cached, nor leave its own to the next test.
"""

import pytest

from ktstr.settings import settings


@pytest.fixture(autouse=True)
def _fresh_settings():
    settings.cache_clear()
    yield
    settings.cache_clear()
