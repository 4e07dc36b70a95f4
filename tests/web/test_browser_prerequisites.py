"""Where Chromium or the npm packages are missing the viewer's browser tests skip; under CI they fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web import browser


def test_missing_chromium_or_npm_packages_skip_and_ci_turns_that_into_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REQUIRE_BROWSER", raising=False)
    monkeypatch.setattr(browser, "NPM_DIR", tmp_path)  # no node_modules here
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "chromium"))
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        browser.require_browser()
    (tmp_path / "chromium").touch()
    missing = browser.missing_prerequisite()
    if missing is not None and missing.startswith("node"):
        pytest.skip("node is not installed here either")
    with pytest.raises(pytest.skip.Exception, match="playwright-core is not installed"):
        browser.require_browser()
    monkeypatch.setenv("REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1 but npm package playwright-core"):
        browser.require_browser()
