"""The serverless half: functions, consumers, worker processes, retries and invocations."""
