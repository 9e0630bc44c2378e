"""Reading walls of every tile kind, for the tile-kind, wall, theme, layout and kiosk tests:
a real server started with a TOML file (module-scoped: one per test module), publishing
through ``POST /publish``, and what the page shows read through the DOM contract (README
"The page: kinds, walls, playlists, screens"): ``data-kind``, ``data-tile``, ``data-state``,
``[data-field=value]``, ``[data-row]``, ``#title``."""

# ruff: noqa: E501 (the JavaScript read in the page is kept as one would write it there)
from __future__ import annotations

import contextlib
import json
import re
import shutil
import textwrap
from pathlib import Path

from tests.support import ARTIFACTS, ServerProcess, http_request, publish, wait_until

TOKEN = "kinds-token"
SHOTS = Path("/tmp/kinds-shots")

# A wall with one tile of every kind (the layout, theme and screenshot tests): values that
# are long for their kind, a list of five rows, a two-line announcement.
MIXED_STREAMS = ["orders", "cpu", "customers", "notice", "api", "latency"]
MIXED_WALL = textwrap.dedent("""
    [[dashboards.{name}.tiles]]
    stream = "orders"
    label = "Orders today"
    compare = 0

    [[dashboards.{name}.tiles]]
    kind = "gauge"
    stream = "cpu"
    label = "CPU"
    format = "percent"
    max = 100
    warn = 70
    crit = 90

    [[dashboards.{name}.tiles]]
    kind = "list"
    stream = "customers"
    label = "Top customers"
    columns = ["name", "total"]
    currency = "EUR"

    [[dashboards.{name}.tiles]]
    kind = "text"
    stream = "notice"
    label = "Announcement"

    [[dashboards.{name}.tiles]]
    kind = "status"
    stream = "api"
    label = "API"
    ok = ["up"]
    warn = ["degraded"]
    crit = ["down"]

    [[dashboards.{name}.tiles]]
    kind = "clock"
    label = "Berlin"

    [[dashboards.{name}.tiles]]
    kind = "chart"
    stream = "latency"
    label = "p95 latency"
    unit = "ms"
    window = 600
""")
CUSTOMERS = [("Acme GmbH", 125000.5), ("Globex", 98200), ("Initech", 40310.25), ("Umbrella", 12000),
             ("Hooli", 999.9)]


def streams_toml(names, **extra) -> str:
    return "".join(f"[streams.{name}]\nsource = \"publish\"\n" + "".join(f"{k} = {v}\n" for k, v in extra.items())
                   for name in names)


def mixed_wall(name: str, title: str = "Operations", **keys) -> str:
    head = f"[dashboards.{name}]\ntitle = \"{title}\"\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    return head + MIXED_WALL.format(name=name)


def fill_mixed(server: ServerProcess, cpu: float = 76.5) -> None:
    """Values on every tile of the mixed wall: a change on orders, five customers, a chart."""
    for value in (1200, 1234567.89):
        put(server, "orders", value)
    put(server, "cpu", cpu)
    put(server, "customers", {"variable": 5, "rows": [{"name": n, "total": t} for n, t in CUSTOMERS]})
    put(server, "notice", "Deploy freeze until 14:00")
    put(server, "api", "up")
    for value in (82, 97, 88, 120, 91):
        put(server, "latency", value)


@contextlib.contextmanager
def running_server(tmp_path: Path, config: str, *args: str):
    """``python server.py --config FILE`` for a whole module (the fixtures in conftest.py are
    per test); its output is shown with a failing test (ServerProcess.live)."""
    path = tmp_path / "walls.toml"
    path.write_text(config)
    server = ServerProcess("--config", str(path), "--publish-token", TOKEN, *args)
    try:
        yield server.start()
    finally:
        server.stop()
        server.discard_log()


def put(server: ServerProcess, stream: str, value) -> None:
    status, answer = publish(server.http, stream, value if isinstance(value, dict) else {"variable": value}, TOKEN)
    assert status == 200, answer


def post_screen(server: ServerProcess, name: str, body: dict) -> dict:
    status, _, answer = http_request(f"{server.http}/screens/{name}", "POST", json.dumps(body).encode(),
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    assert status == 200, answer
    return json.loads(answer)


# Every tile, whatever its kind, as a person and an integrator read it.
TILES = """() => [...document.querySelectorAll('main.wall:not([hidden]) .tile')].map((tile) => {
  const field = (name) => tile.querySelector('[data-field="' + name + '"]');
  const text = (name) => (field(name) && !field(name).hidden ? field(name).textContent : null);
  const size = (node) => (node ? parseFloat(getComputedStyle(node).fontSize) : null);
  const value = field('value');
  return {
    kind: tile.dataset.kind, stream: tile.dataset.tile || null, state: tile.dataset.state || null,
    level: tile.dataset.level || null, status: tile.dataset.status || null, alert: tile.dataset.alert || null,
    age: tile.dataset.age === undefined ? null : Number(tile.dataset.age),
    label: text('label'), cue: text('state'), detail: text('detail'), value: value ? value.textContent : null,
    unit: text('unit'), change: text('change'),
    direction: field('change') ? field('change').dataset.direction || null : null,
    word: text('status'), date: text('date'), tz: tile.dataset.tz || null,
    rows: [...tile.querySelectorAll('[data-row]')].map((row) => [...row.children].map((cell) => cell.textContent)),
    columns: [...tile.querySelectorAll('[data-row]:first-child [data-cell]')].map((cell) => cell.dataset.cell),
    points: field('chart') ? Number(field('chart').dataset.points) : null,
    axis: field('axis') ? [...field('axis').children].map((label) => label.textContent) : null,
    percent: field('gauge') ? Number(field('gauge').dataset.percent) : null,
    zones: [...tile.querySelectorAll('.gauge-zone')].map((zone) => [zone.className.split(' ')[1],
             parseFloat(zone.style.left), parseFloat(zone.style.width)]),
    min: text('min'), max: text('max'),
    labelPx: size(field('label')), valuePx: value ? size(tile.querySelector('.value-line')) : null,
    rowPx: size(tile.querySelector('[data-cell]')),
  };
})"""


def tiles(page) -> list[dict]:
    return page.evaluate(TILES)


def by_stream(page) -> dict[str, dict]:
    return {tile["stream"] or tile["kind"]: tile for tile in tiles(page)}


def nbsp(text: str | None) -> str | None:
    """Intl puts no-break spaces (U+00A0, U+202F) where a person sees a space."""
    return None if text is None else re.sub("[\u00a0\u202f]", " ", text)


def settled(page) -> None:
    wait_until(lambda: page.evaluate("document.getAnimations().length === 0"), 3, message="a settled screen")
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


# Every visible element of each tile lies inside it; text is never cut without an ellipsis
# (the list's cells and the labels are styled to end in one); the page never scrolls.
LAYOUT = """() => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > innerWidth || root.scrollHeight > innerHeight) problems.push('the page scrolls');
  for (const tile of document.querySelectorAll('main.wall:not([hidden]) .tile')) {
    const name = tile.dataset.tile || tile.dataset.kind;
    const outer = tile.getBoundingClientRect();
    if (outer.right > innerWidth + 1 || outer.bottom > innerHeight + 1) problems.push(name + ': tile off screen');
    for (const node of tile.querySelectorAll('.tile-body *')) {
      if (node.closest('[hidden]') || node.closest('svg') || !node.getClientRects().length) continue;
      const box = node.getBoundingClientRect();
      if (!box.width || !box.height) continue;
      if (box.left < outer.left - 1 || box.right > outer.right + 1 || box.top < outer.top - 1 || box.bottom > outer.bottom + 1) {
        problems.push(name + ': ' + (node.dataset.field || node.dataset.cell || node.className || node.tagName) + ' outside its tile');
      }
      const style = getComputedStyle(node);
      const own = [...node.childNodes].some((child) => child.nodeType === 3 && child.textContent.trim());
      if (own && node.scrollWidth > node.clientWidth + 1 && style.textOverflow !== 'ellipsis' && style.display !== 'inline') {
        problems.push(name + ': ' + (node.dataset.field || node.className || node.tagName) + ' cut');
      }
    }
  }
  return problems;
}"""


def layout_problems(page) -> list[str]:
    return page.evaluate(LAYOUT)


# WCAG 2 contrast of every visible text in every tile (and the top bar) against what is
# behind it, from computed styles: the text colour with its alpha and every opacity up to
# the page, over the stack of backgrounds (translucent pills over the tile over the page).
# Large text (>= 24 px, or >= 18.66 px bold) needs 3:1, other text 4.5:1.
CONTRAST = """() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat(1);
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                       return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const background = (node) => {
    const layers = [];
    for (let el = node; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] === 1) break;
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const results = [];
  const texts = [...document.querySelectorAll('main.wall:not([hidden]) .tile *, #title, #status')]
    .filter((node) => [...node.childNodes].some((child) => child.nodeType === 3 && child.textContent.trim()))
    .filter((node) => !node.closest('[hidden]') && node.getClientRects().length && getComputedStyle(node).visibility !== 'hidden');
  for (const node of texts) {
    const style = getComputedStyle(node);
    let opacity = 1;
    for (let el = node; el; el = el.parentElement) opacity *= Number(getComputedStyle(el).opacity);
    const colour = parse(style.color);
    colour[3] *= opacity;
    const behind = background(node);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const tile = node.closest('.tile');
    results.push({ where: (tile ? (tile.dataset.tile || tile.dataset.kind) + '/' + (tile.dataset.state || '-') : node.id)
                     + ': ' + (node.dataset.field || node.dataset.cell || node.className || node.tagName),
                   text: node.textContent.trim().slice(0, 30), ratio: Math.round(ratio(over(colour, behind), behind) * 100) / 100,
                   needs: large ? 3 : 4.5 });
  }
  return results;
}"""


def contrast_failures(page) -> list[dict]:
    return [r for r in page.evaluate(CONTRAST) if r["ratio"] < r["needs"]]


def contrast_checked(page) -> list[dict]:
    return page.evaluate(CONTRAST)


def shoot(page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    ARTIFACTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    # The same picture, copied: a second screenshot cost chromium another PNG encoding.
    shutil.copyfile(path, ARTIFACTS / f"kinds-{name}.png")
    return path
