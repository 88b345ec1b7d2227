"""The verification paths and their composition: the local path (local), the TokenReview path
(review), the ``Authenticator`` that asks them in order (authenticator), its readiness answer
(readiness), the stale-token log (stale), and the wiring that builds it all (factory:
``compass_auth.connect``)."""
