"""The HTTP API gateway: routes declared in Python or OpenAPI, validation, auth, integrations."""
