"""Suite-wide rules.

In CI (``HVCHECK_CI=1``, set by ``.ci/run``) no test may skip: every tool a test needs is
installed by ``./run-tests``, so a skip there means a test that silently proved nothing. A skip
is turned into a failure that names the skip's reason. Elsewhere (a developer's machine, the
README's fresh-machine check without ``../shared``) skips stay skips.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

NO_SKIPS = os.environ.get("HVCHECK_CI") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (HVCHECK_CI=1), where nothing may skip: {reason}"
