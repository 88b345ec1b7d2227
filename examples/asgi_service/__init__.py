"""The example ASGI service: the example Tornado service's endpoints on Starlette (docs/asgi.md)."""
