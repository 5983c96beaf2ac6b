"""What operators see of a running app: Prometheus metrics and OpenTelemetry traces.

Both wrap the core path rather than branch inside it: a metered backend counts messages at the
storage primitives, an ASGI middleware measures requests, the worker pools report invocations.
"""
