"""The process: entry points, the eventlet HTTP server and its guards, the request pool and
the header reader. eventlet's serving code lives here and in ``dashstream.runtime`` only.

Imports nothing: the console script imports ``dashstream.server.main``, whose first
statement is ``monkey_patch()``.
"""
