"""compass-auth: verify Kubernetes service-account tokens in Tornado services."""

__version__ = "0.1.0"
