"""The emulated API server over HTTPS: its endpoints, the pipeline every request runs (faults,
authentication, authorisation), content negotiation, the request log, and the thread it runs in.
"""
