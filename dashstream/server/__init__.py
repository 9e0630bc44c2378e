"""The process: entry points (``main``), the ``Server`` and its ``ServerState`` with the
ordered shutdown (``server``), the eventlet HTTP server and its guards (``serve``), the
request pool and the header reader. eventlet's serving code lives in ``serve`` and in
``dashstream.runtime`` only.

Imports nothing: the console script imports ``dashstream.server.main``, whose first
statement is ``monkey_patch()``.
"""
