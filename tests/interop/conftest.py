"""Fixtures of the interop matrix, and its summary table.

* ``grpcio_test_server`` (session): grpcio's TestService server behind a
  wire tap (see ``interop_support``), shared by every test.

After the run, the terminal summary prints one table: a row per interop
case, a column per pairing (client -> server), each cell the outcome.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from interop_support import GrpcioServer, start_grpcio_server

#: (pairing, case) -> outcome, filled as the matrix tests report.
_RESULTS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="session")
def grpcio_test_server() -> Iterator[GrpcioServer]:
    """grpcio's TestService on loopback (its own threads), behind a wire tap."""
    served = start_grpcio_server()
    try:
        yield served
    finally:
        served.stop()


def _outcome(report: pytest.TestReport) -> str | None:
    xfailed = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "XPASS" if xfailed else "pass"
        if report.skipped:
            return "xfail" if xfailed else "skip"
        return "XPASS" if "XPASS" in str(report.longrepr) else "FAIL"
    if report.failed:
        return "ERROR"
    if report.skipped and report.when == "setup":
        return "skip"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note each matrix test's outcome under its (pairing, case)."""
    report = yield
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if "pairing" in params and "case" in params:
        outcome = _outcome(report)
        if outcome is not None:
            _RESULTS[(params["pairing"], params["case"])] = outcome
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the interop matrix: cases down, pairings across."""
    if not _RESULTS:
        return
    pairings = list(dict.fromkeys(pairing for pairing, _ in _RESULTS))
    cases = list(dict.fromkeys(case for _, case in _RESULTS))
    width = max(len(case) for case in cases)
    columns = [max(len(p), 5) for p in pairings]
    terminalreporter.section("interop matrix (client -> server)")
    header = " ".join(p.ljust(w) for p, w in zip(pairings, columns, strict=True))
    terminalreporter.write_line(f"{'case'.ljust(width)} {header}")
    for case in cases:
        cells = " ".join(
            _RESULTS.get((p, case), "-").ljust(w) for p, w in zip(pairings, columns, strict=True)
        )
        terminalreporter.write_line(f"{case.ljust(width)} {cells}")
