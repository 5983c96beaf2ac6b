"""The Amazon States Language: definitions, data (JSONPath, intrinsics, JSONata), evaluation."""
