#!/usr/bin/env bash
# dashstream-kiosk: Chromium full screen on a dashstream wall, for a TV that is switched on
# and left alone for months (README.md, "Kiosk: a TV that shows the wall on its own").
#
#   dashstream-kiosk [--keep-running] [URL]
#
# The wall's address: URL, else $DASHSTREAM_KIOSK_URL, else the settings file's, else
# http://localhost:5000/. Settings (environment variables win over the file):
#   DASHSTREAM_KIOSK_URL          the page, e.g. http://dash.example:5000/?screen=lobby
#   DASHSTREAM_KIOSK_BROWSER      the browser: default chromium, else chromium-browser (Raspberry Pi OS)
#   DASHSTREAM_KIOSK_PROFILE      its own --user-data-dir, never your everyday profile:
#                                 default ${XDG_STATE_HOME:-~/.local/state}/dashstream-kiosk
#   DASHSTREAM_KIOSK_MODE         kiosk (full screen, the default) or app (--app=URL: a window
#                                 without tabs or address bar, e.g. to try it on a desktop)
#   DASHSTREAM_KIOSK_EXTRA_FLAGS  more Chromium flags, split on spaces (no quoting)
#   DASHSTREAM_KIOSK_ENV          the settings file: default ~/.config/dashstream-kiosk.env,
#                                 lines of KEY=VALUE with the keys above ('#' starts a comment)
#
# Without --keep-running the script becomes the browser (exec): systemd watches and restarts
# it (deploy/kiosk/dashstream-kiosk.service). With it, the script stays and starts the
# browser again 5 s after it exits, for an autostart entry that nothing else restarts
# (deploy/kiosk/dashstream-kiosk.desktop). SIGTERM or SIGINT stops the browser and the script.
set -euo pipefail

keep_running=""
url_argument=""
for argument in "$@"; do
    case "$argument" in
        --keep-running) keep_running=yes ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "dashstream-kiosk: unknown option $argument (see --help)" >&2; exit 2 ;;
        *)
            [ -z "$url_argument" ] || { echo "dashstream-kiosk: one URL only, got $url_argument and $argument" >&2; exit 2; }
            url_argument="$argument" ;;
    esac
done

# The settings file: only the keys above, and only those the environment does not set.
settings="${DASHSTREAM_KIOSK_ENV:-$HOME/.config/dashstream-kiosk.env}"
if [ -f "$settings" ]; then
    line_number=0
    while IFS= read -r line || [ -n "$line" ]; do
        line_number=$((line_number + 1))
        line="${line#"${line%%[![:space:]]*}"}"  # leading blanks
        case "$line" in "" | "#"*) continue ;; esac
        key="${line%%=*}"
        value="${line#*=}"
        [ "$key" != "$line" ] || { echo "dashstream-kiosk: $settings line $line_number: expected KEY=VALUE" >&2; exit 2; }
        case "$key" in
            DASHSTREAM_KIOSK_URL | DASHSTREAM_KIOSK_BROWSER | DASHSTREAM_KIOSK_PROFILE | DASHSTREAM_KIOSK_MODE | DASHSTREAM_KIOSK_EXTRA_FLAGS) ;;
            *) echo "dashstream-kiosk: $settings line $line_number: unknown setting '$key' (allowed: DASHSTREAM_KIOSK_URL, _BROWSER, _PROFILE, _MODE, _EXTRA_FLAGS)" >&2; exit 2 ;;
        esac
        # One pair of surrounding quotes is allowed, as systemd's EnvironmentFile= allows.
        case "$value" in \"*\" | \'*\') value="${value:1:${#value}-2}" ;; esac
        [ -n "${!key+set}" ] || export "$key=$value"
    done < "$settings"
fi

url="${url_argument:-${DASHSTREAM_KIOSK_URL:-http://localhost:5000/}}"
case "$url" in
    http://* | https://* | file://*) ;;
    *) echo "dashstream-kiosk: the URL must start with http://, https:// or file://, got '$url'" >&2; exit 2 ;;
esac
mode="${DASHSTREAM_KIOSK_MODE:-kiosk}"
case "$mode" in
    kiosk) open=(--kiosk "$url") ;;
    app) open=("--app=$url") ;;
    *) echo "dashstream-kiosk: DASHSTREAM_KIOSK_MODE must be kiosk or app, got '$mode'" >&2; exit 2 ;;
esac

browser="${DASHSTREAM_KIOSK_BROWSER:-}"
if [ -z "$browser" ]; then
    browser="$(command -v chromium || command -v chromium-browser || true)"
    [ -n "$browser" ] || { echo "dashstream-kiosk: no chromium or chromium-browser on PATH (apt-get install chromium), or set DASHSTREAM_KIOSK_BROWSER" >&2; exit 1; }
fi
profile="${DASHSTREAM_KIOSK_PROFILE:-${XDG_STATE_HOME:-$HOME/.local/state}/dashstream-kiosk}"
read -r -a extra_flags <<< "${DASHSTREAM_KIOSK_EXTRA_FLAGS:-}"

# A browser with a window needs the session's display. Under systemd the session exports it
# to the user manager when graphical-session.target starts; without it Chromium would only say
# "Missing X server or $DISPLAY". (--headless needs none: the tests run it so.)
case " ${extra_flags[*]} " in
    *" --headless"*) ;;
    *) [ -n "${WAYLAND_DISPLAY:-}${DISPLAY:-}" ] || { echo "dashstream-kiosk: neither WAYLAND_DISPLAY nor DISPLAY is set: start it from the graphical session (its autostart, or the systemd user unit after graphical-session.target)" >&2; exit 1; } ;;
esac

flags=(
    "--user-data-dir=$profile"
    --no-first-run                    # no welcome page, no default-browser question
    --noerrdialogs                    # no error dialogs on the screen
    --disable-infobars                # no "controlled by automated software" style bars
    --disable-session-crashed-bubble  # no "Restore pages?" after a power cut (older Chromium)
    --hide-crash-restore-bubble       # the same for Chromium 113 and later
    --check-for-update-interval=31536000  # no "Chromium is out of date" nag: apt updates it
    --autoplay-policy=no-user-gesture-required  # ?sound=1 plays its tone without a click
    --password-store=basic            # no "unlock your keyring" prompt at start
    --disable-features=Translate      # no "Translate this page?" bubble
    --ozone-platform-hint=auto        # Wayland where the session is Wayland, else X11
)

# "Chromium didn't shut down correctly": after a power cut the profile still says
# "exit_type":"Crashed" (the browser writes it at start and "Normal" at a clean exit), and
# the next start offers to restore. Mark the last exit normal before every start.
mark_clean_exit() {
    local preferences="$profile/Default/Preferences"
    [ -f "$preferences" ] || return 0
    sed -i -e 's/"exit_type":"[^"]*"/"exit_type":"Normal"/g' \
           -e 's/"exited_cleanly":false/"exited_cleanly":true/g' "$preferences"
}

# Two browsers on one profile: the second hands its URL to the first and exits at once, so a
# supervisor would open a new window every 5 s. Refuse instead (both the unit and the
# autostart entry installed, or a browser still shutting down: the unit retries in 5 s).
refuse_if_in_use() {
    local owner
    owner="$(readlink "$profile/SingletonLock" 2>/dev/null)" || return 0  # HOSTNAME-PID
    if [ "${owner%-*}" = "$(uname -n)" ] && kill -0 "${owner##*-}" 2>/dev/null; then
        echo "dashstream-kiosk: another Chromium (pid ${owner##*-}) already runs on $profile: stop it first (is both the systemd unit and the autostart entry installed?)" >&2
        exit 1
    fi
}

# On X11 the screen saver blanks the screen after 10 min without input and DPMS switches the
# monitor off: not on a wall. (A Wayland session has its own idle setting: see README.md.)
if [ -n "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    if command -v xset >/dev/null 2>&1; then
        xset s off -dpms s noblank || echo "dashstream-kiosk: xset could not turn screen blanking off on $DISPLAY" >&2
    else
        echo "dashstream-kiosk: no xset (apt-get install x11-xserver-utils): the screen may blank" >&2
    fi
fi

mkdir -p "$profile"
echo "dashstream-kiosk: $browser ($mode) on $url, profile $profile" >&2

if [ -z "$keep_running" ]; then
    refuse_if_in_use
    mark_clean_exit
    exec "$browser" "${flags[@]}" "${extra_flags[@]}" "${open[@]}"
fi

child=""
stopping=""
stop() {
    stopping=yes
    [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true
}
trap stop TERM INT
while :; do
    refuse_if_in_use
    mark_clean_exit
    "$browser" "${flags[@]}" "${extra_flags[@]}" "${open[@]}" &
    child=$!
    status=0
    # wait returns early when a signal arrives: wait again for the browser's own exit.
    wait "$child" || status=$?
    while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done
    child=""
    [ -z "$stopping" ] || exit 0
    echo "dashstream-kiosk: the browser exited with status $status; starting it again in 5 s" >&2
    sleep 5 &
    sleeper=$!
    wait "$sleeper" || true
    kill "$sleeper" 2>/dev/null || true
    [ -z "$stopping" ] || exit 0
done
