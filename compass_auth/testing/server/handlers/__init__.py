"""The endpoints' Tornado handlers, one module per API group."""
