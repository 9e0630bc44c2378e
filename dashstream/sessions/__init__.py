"""One client, whatever its transport: the non-blocking write engine and slow-subscriber
policy (``session``), WebSocket and Server-Sent Events sessions, and the keepalive clock."""
