"""Configuration: the one ``OPTIONS`` table (CLI, environment, ``--help``, README) and the
stream and wall files, parsed into one ``Config`` that flows one way into the server.

Importing it loads no eventlet and no driver (tests/unit/test_layout.py checks it).
"""
