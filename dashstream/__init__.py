"""dashstream: push live data to dashboard screens over WebSockets (eventlet)."""

__version__ = "0.1.0"
