"""Reading the wall as a person and as an integrator would, for the wall-truth tests: every
tile's DOM contract (``data-state``, ``data-age``, ``data-points``) and words, the single
view's, and a layout check (no text outside its tile, no overlapping labels)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import ARTIFACTS

SHOTS = Path("/tmp/wall-shots")
VIEWPORTS = {"1920x1080": (1920, 1080), "3840x2160": (3840, 2160), "390x844": (390, 844)}

TILES = """() => Object.fromEntries([...document.querySelectorAll('[data-tile]')].map((tile) => {
  const field = (name) => tile.querySelector('[data-field="' + name + '"]');
  const shown = (name) => (field(name).hidden ? null : field(name).textContent);
  return [tile.dataset.tile, {
    state: tile.dataset.state, age: tile.dataset.age === undefined ? null : Number(tile.dataset.age),
    points: Number(field('chart').dataset.points), cue: field('state').textContent,
    pill: field('state').dataset.state, value: field('value').textContent, unit: field('unit').textContent,
    updated: field('updated').textContent, detail: shown('detail'), gap: shown('gap'),
    gaps: tile.querySelectorAll('.chart-gaps line').length,
    background: getComputedStyle(tile).backgroundColor,
    opacity: Number(getComputedStyle(tile.querySelector('.value-line')).opacity),
  }];
}))"""

SINGLE = """() => ({
  state: document.body.dataset.state, link: document.body.dataset.link,
  age: document.body.dataset.age === undefined ? null : Number(document.body.dataset.age),
  points: Number(document.getElementById('chart').dataset.points),
  value: document.getElementById('variable').textContent, unit: document.getElementById('unit').textContent,
  updated: document.getElementById('updated').textContent,
  stale: document.getElementById('stale').hidden ? null : document.getElementById('stale').textContent,
  gap: document.getElementById('gap').hidden ? null : document.getElementById('gap').textContent,
})"""

# Every visible text box of each tile must lie inside the tile, and the boxes that share a
# tile must not cover each other (label/pill, detail/value, value/chart, max/min, chart/foot).
LAYOUT = """() => {
  const problems = [];
  const box = (node) => node.getBoundingClientRect();
  const visible = (node) => node && !node.closest('[hidden]') && box(node).width > 0 && box(node).height > 0;
  const inside = (inner, outer) => inner.left >= outer.left - 1 && inner.right <= outer.right + 1
    && inner.top >= outer.top - 1 && inner.bottom <= outer.bottom + 1;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  const views = [...document.querySelectorAll('[data-tile]')];
  for (const tile of views) {
    const name = tile.dataset.tile;
    const field = (f) => tile.querySelector('[data-field="' + f + '"]');
    const parts = { label: field('label'), pill: field('state'), detail: field('detail'),
                    value: tile.querySelector('.value-line'), chart: field('chart'), max: field('max'),
                    min: field('min'), updated: field('updated'), gap: field('gap') };
    const outer = box(tile);
    for (const [part, node] of Object.entries(parts)) {
      if (!visible(node)) continue;
      if (!inside(box(node), outer)) problems.push(name + ': ' + part + ' outside its tile');
      // Text cut without an ellipsis is text lost: only the parts styled to clip may clip.
      if (['value', 'max', 'min'].includes(part) && node.scrollWidth > node.clientWidth + 1
          && getComputedStyle(node).textOverflow !== 'ellipsis') problems.push(name + ': ' + part + ' cut');
    }
    const pairs = [['label', 'pill'], ['detail', 'value'], ['value', 'chart'], ['max', 'min'],
                   ['chart', 'updated'], ['value', 'updated'], ['pill', 'detail'], ['updated', 'gap']];
    for (const [a, b] of pairs) {
      if (visible(parts[a]) && visible(parts[b]) && overlap(box(parts[a]), box(parts[b]))) {
        problems.push(name + ': ' + a + ' overlaps ' + b);
      }
    }
    const chart = parts.chart;
    if (visible(chart) && box(chart).height < 0.25 * outer.height - 1) problems.push(name + ': chart under 25 %');
  }
  if (!views.length) {
    const screen = { left: 0, top: 0, right: innerWidth, bottom: innerHeight };
    for (const id of ['value-line', 'chart', 'updated', 'chart-max', 'chart-min', 'status', 'stream']) {
      const node = document.getElementById(id);
      if (visible(node) && !inside(box(node), screen)) problems.push(id + ' outside the screen');
    }
    const max = document.getElementById('chart-max');
    const min = document.getElementById('chart-min');
    if (visible(max) && visible(min) && overlap(box(max), box(min))) problems.push('max overlaps min');
    const line = document.getElementById('value-line');
    if (visible(line) && overlap(box(line), box(document.getElementById('chart')))) problems.push('value over chart');
  }
  return problems;
}"""


def tiles(page) -> dict[str, dict]:
    return page.evaluate(TILES)


def single(page) -> dict:
    return page.evaluate(SINGLE)


# The check runs after two animation frames (the page's ResizeObservers refit and the grid
# re-arranges before a paint, as after a viewport change) and, when it finds something, again
# after two more (three tries): a timer task can change a text (the 250 ms clock tick: "no new
# value for 5 s" makes a detail two lines) between two frames, and the page's ResizeObservers
# refit the value before that layout is ever painted. A problem that lasts three frames is one a viewer sees.
PAINTED_LAYOUT = """async () => {
  const check = %s;
  const frames = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  let problems = [];
  for (let attempt = 0; attempt < 3; attempt += 1) {
    await frames();
    problems = check();
    if (!problems.length) break;
  }
  return problems;
}""" % LAYOUT


def layout_problems(page) -> list[str]:
    return page.evaluate(PAINTED_LAYOUT)


def shoot(page, state: str, viewports=VIEWPORTS) -> list[Path]:
    """Screenshots of the page as it is now at each viewport into /tmp/wall-shots (and
    test-artifacts/), each checked for layout problems first. Returns the files."""
    SHOTS.mkdir(exist_ok=True)
    ARTIFACTS.mkdir(exist_ok=True)
    original = page.viewport_size
    files = []
    try:
        for name, (width, height) in viewports.items():
            page.set_viewport_size({"width": width, "height": height})
            problems = layout_problems(page)
            assert not problems, (state, name, problems)
            path = SHOTS / f"{state}-{name}.png"
            page.screenshot(path=str(path))
            # The same picture, copied: a second screenshot cost chromium another PNG encoding
            # (half a second of CPU at 3840x2160).
            shutil.copyfile(path, ARTIFACTS / f"wall-truth-{state}-{name}.png")
            files.append(path)
    finally:
        page.set_viewport_size(original)
    return files
