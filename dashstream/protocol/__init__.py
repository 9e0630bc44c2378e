"""WebSocket framing without I/O (bytes in, events and bytes out) and permessage-deflate:
the ground floor every transport reuses, tested with bytes alone."""
