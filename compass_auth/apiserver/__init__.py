"""The API-server edge: the connection (connection, with its DNS bypass, token file and
middlewares), discovery of the key set, the review APIs (reviews: one client; tokenreview and
subjectaccess: their wires), Retry-After, in-flight budgets, operator-facing diagnoses
(troubleshoot)."""
