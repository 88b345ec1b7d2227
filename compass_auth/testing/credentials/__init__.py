"""Tokens and certificates: JWS, signing keys, minting, token validation, the CA, and the files
a workload reads them from (kubeconfig, service-account folder)."""
