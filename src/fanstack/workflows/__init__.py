"""Workflows (Step Functions): Amazon States Language state machines, run durably.

The language is pure and lives in `core/asl/`; here are the engine (`engine.py`, a worker
service), the tables and queue it keeps its state in (`store.py`, `steps.py`), history
(`history.py`), task resources (`tasks.py`) and what a user touches (`workflow.py`).
"""

from fanstack.workflows.workflow import EXPRESS, STANDARD, Execution, Workflow, Workflows

__all__ = ["EXPRESS", "STANDARD", "Execution", "Workflow", "Workflows"]
