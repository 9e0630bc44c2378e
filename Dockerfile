# dashstream in a container: `docker build -t dashstream .` then
# `docker run --rm -p 5000:5000 dashstream` (README.md, "Docker").
#
# No Docker engine runs where this project is developed, so tests/services/test_dockerfile.py checks
# this file instead: hadolint lints it, and a replay performs its COPY and RUN steps into
# a fresh venv, starts CMD with these ENV values and runs the HEALTHCHECK command. The
# replay knows only the instructions used here; a new kind of step must be taught to it.

# Pinned by tag: a rebuild gets the same Python and Debian release, not whatever
# "3.11-slim" points at that day.
FROM python:3.11.14-slim-bookworm

# pip runs once, as root, at build time: no version nag, no root warning.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Build and install the package from /src. The server then runs from /app, which holds
# only the entry point and the page, so what runs is the installed package (with its
# pinned eventlet), not a source tree that would shadow it on sys.path. (/src stays: a
# few hundred KB, and removing it would take a RUN step that the replay cannot mirror.)
WORKDIR /src
# setup.py copies index.html into the package, so the installed `dashstream` command has
# its page too (the image's CMD serves /app/index.html through server.py).
COPY pyproject.toml setup.py README.md server.py index.html ./
COPY dashstream/ dashstream/
COPY producer/ producer/
# `[all]`: every optional source's driver (PostgreSQL, Redis, ZeroMQ), so one image serves
# any streams file; without a driver a default install runs only random-walk and publish.
# Spelled "./[all]" so that hadolint sees a local path, not an unpinned package.
RUN pip install --no-cache-dir "./[all]"

WORKDIR /app
COPY server.py index.html ./

# Inside the container the server must listen on every interface for `-p` to reach it;
# the default (127.0.0.1) is right for a laptop and wrong here. The server reads these
# as fallbacks for --host/--port, so `docker run -e DASHSTREAM_...` sets any option.
# DASHSTREAM_STATE: every shared stream's numbering, last value and history survive a
# restart of the container, in a file on the volume below (README, "Restarts keep the
# streams"); `-e DASHSTREAM_STATE=` turns it off.
ENV DASHSTREAM_HOST=0.0.0.0 \
    DASHSTREAM_PORT=5000 \
    DASHSTREAM_STATE=/var/lib/dashstream/state.db

# A numeric user that exists in no /etc/passwd: the server needs no home directory, owns
# none of its files (root does, so it cannot change its own code), and Kubernetes'
# runAsNonRoot can only verify a numeric USER.
USER 10001:10001

# The state's directory, made after USER: BuildKit (Docker's builder since 23.0) creates a
# WORKDIR owned by the current user, so the server may write there, and a named volume
# mounted on it starts with that owner. Declared a VOLUME so that the file outlives the
# container (`docker run -v dashstream-state:/var/lib/dashstream`); without -v Docker
# still keeps it in an anonymous volume for as long as the container exists.
WORKDIR /var/lib/dashstream
VOLUME /var/lib/dashstream
WORKDIR /app

EXPOSE 5000

# python is PID 1 (exec-form CMD, no shell in between) and handles SIGTERM itself: it
# stops accepting, closes every WebSocket with 1001 and exits 0 within 2 s, well inside
# `docker stop`'s 10 s grace. SIGTERM is Docker's default; said here so nobody changes it
# to a signal the server treats differently.
STOPSIGNAL SIGTERM

# The slim image has no curl; Python's urllib does the same job. It follows
# DASHSTREAM_PORT, so `-e DASHSTREAM_PORT=8000` keeps the check right, and the scheme:
# https when DASHSTREAM_CERTFILE is set (TLS in the container is set by -e, like every
# option), without verifying the certificate, whose name is the site's, not 127.0.0.1's
# (the check talks to its own loopback). urlopen raises on an error status (503 while
# shutting down) or after 4 s, and an exception exits 1 = unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; tls = ssl.create_default_context() if os.environ.get('DASHSTREAM_CERTFILE') else None; tls and (setattr(tls, 'check_hostname', False), setattr(tls, 'verify_mode', ssl.CERT_NONE)); urllib.request.urlopen('%s://127.0.0.1:%s/healthz' % ('https' if tls else 'http', os.environ.get('DASHSTREAM_PORT', '5000')), timeout=4, context=tls)"]

CMD ["python", "server.py"]
