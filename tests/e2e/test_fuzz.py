"""The marketplace API fuzzed from its own OpenAPI document (schemathesis): no 5xx, no crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import Server


def test_fuzzing_the_marketplace_api_finds_no_server_errors(
    marketplace: Server, tmp_path: Path
) -> None:
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{marketplace.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance",
            "--max-examples",
            "60",
            "--seed",
            "20261124",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stdout[-6000:] + report.stderr[-2000:]
    assert marketplace.process.poll() is None  # the server is still up
    statuses = _statuses(marketplace.logs())
    assert statuses.count(" 202") + statuses.count(" 400") > 50  # it really exercised the API
    assert " 5" not in statuses


def _statuses(logs: str) -> str:
    import json

    codes = []
    for line in logs.splitlines():
        if line.startswith("{"):
            status = json.loads(line).get("status")
            if status is not None:
                codes.append(f" {status}")
    return "".join(codes)
