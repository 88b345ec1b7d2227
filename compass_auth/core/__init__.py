"""The pure core: reading a token and deciding on it, without I/O.

Bearer headers and fingerprints (bearer), JWS segments (segments), claims and the Kubernetes
policy (claims), the verifier (verifier), key sets (keyset), the caller's identity (identity),
the outcomes (errors), access checks (access) and the bounded verdict caches (cache).
"""
