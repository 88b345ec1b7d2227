"""A plain OIDC issuer (not Kubernetes) on loopback: discovery, JWKS, minting with any claims
(``OidcIssuer``; README.md beside the kit, "Several issuers")."""
