"""The integration API's domain (A7): scoped API keys and top-ups made through the API.

The HTTP side (routes, problems, rate limits, OpenAPI) lives in `app.api`; like every view, it
never commits: the functions here do, once.
"""
