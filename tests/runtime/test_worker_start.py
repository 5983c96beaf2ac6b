"""A function worker starts with what its handler needs: an app's HTTP API, checked and served
by the dispatcher, is neither imported nor compiled again in every worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MARKETPLACE = Path(__file__).resolve().parents[2] / "examples" / "marketplace"
LOAD = """
import json, sys
from fanstack.runtime.role import become_function_worker
if sys.argv[1] == "worker":
    become_function_worker()
sys.path.insert(0, sys.argv[2])
import app
handler = app.process_order  # a function of the app, as a worker finds its handler
print(json.dumps(sorted(m for m in sys.modules if m.startswith("fanstack.gateway")
                        or m in ("jsonschema", "fastjsonschema"))))
"""


def loaded_modules(role: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, role, str(MARKETPLACE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def test_a_function_worker_loads_an_app_with_an_api_without_the_gateway() -> None:
    assert loaded_modules("worker") == []
    # The same app in any other process declares and checks its API as before.
    assert "fanstack.gateway.api" in loaded_modules("dispatcher")
