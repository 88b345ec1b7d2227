"""The Tornado adapter: ``AuthenticatedHandler`` (handler), ``AuthenticatedWebSocketHandler``
(websocket, with its per-caller cap in core/caller_slots), server spans (server_spans) and the
check of each route's protection (routes)."""
