"""The edge: what a request meets before it reaches a stream. Routing (one table), the
WebSocket upgrade, the subscribe query, admission (origin, token, rate, capacity), forwarded
addresses, and the HTTP helpers every endpoint shares."""
