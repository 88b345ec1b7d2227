"""Key management: the key cache (cache), when the next fetch may start (schedule), what tokens
name that the key set lacks (unknown), start-up and refresh (lifecycle), the issuer cross-check
(issuer_check)."""
