#!/usr/bin/env python3
"""Checks prov's HTML plan report in a real browser: Debian's chromium, headless, driven by
Playwright for Python through `executable_path` (Playwright's own browser downloads are not used).

Run by tests/e2e/report.rs (and so by .ci/run):

    check_report.py --chromium /usr/bin/chromium --report small.html --large large.html \
        [--large-count 10000] [--budget 2.0] [--screenshots DIR]

`--report`: a plan with every kind of change; the page must load without console errors or
network requests, the action filters and the address search must hide and show the right
resources, and a graph node must open its resource. `--large`: a plan of `--large-count`
resources, which must load (navigation to the load event, the report's script included) in
under `--budget` seconds (the best of up to three loads). Prints one line per check; exits 1 on the first failure.
"""
import argparse
import pathlib
import sys
import time

from playwright.sync_api import sync_playwright


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print("ok:", what)


def open_page(browser, path, errors, requests):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: errors.append("console %s: %s" % (m.type, m.text))
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append("page error: %s" % e))
    page.on("request", lambda r: requests.append(r.url)
            if not r.url.startswith(("file:", "data:", "about:")) else None)
    start = time.monotonic()
    page.goto(pathlib.Path(path).resolve().as_uri(), wait_until="load")
    return page, time.monotonic() - start


def visible(page):
    """(action, address) of every resource entry not hidden by the filters."""
    return page.eval_on_selector_all(
        "details.res",
        "els => els.filter(e => !e.hidden).map(e => [e.dataset.action, e.dataset.address])")


def settle(page):
    # The search input is debounced (80 ms).
    page.wait_for_timeout(250)


def check_small(browser, path, shots):
    errors, requests = [], []
    page, _ = open_page(browser, path, errors, requests)
    check(page.title().startswith("prov"), "title %r" % page.title())
    all_rows = visible(page)
    actions = sorted({a for a, _ in all_rows})
    check(len(all_rows) > 0, "%d resources listed (%s)" % (len(all_rows), ", ".join(actions)))
    check(len(actions) >= 3, "the report shows several kinds of change")
    shown = page.inner_text("#shown")
    check(shown == "showing %d of %d" % (len(all_rows), len(all_rows)), "counter says %r" % shown)
    if shots:
        page.screenshot(path=str(pathlib.Path(shots) / "plan-report.png"), full_page=True)

    # Filters: each action off hides exactly its resources, on again shows them.
    for action in actions:
        page.uncheck("input.filter[value=%s]" % action)
        rows = visible(page)
        check(all(a != action for a, _ in rows)
              and len(rows) == sum(1 for a, _ in all_rows if a != action),
              "filter: %s off hides its %d resources" % (action, len(all_rows) - len(rows)))
        dimmed = page.eval_on_selector_all(
            "svg.graph .node.dim", "els => els.map(e => e.dataset.action)")
        check(all(a == action for a in dimmed), "filter: graph dims only %s nodes" % action)
        page.check("input.filter[value=%s]" % action)
    check(len(visible(page)) == len(all_rows), "filters: all on shows everything again")

    # Search by address (case-insensitive substring).
    target = all_rows[0][1]
    needle = target.split(".")[-1].upper()
    page.fill("#search", needle)
    settle(page)
    rows = visible(page)
    check(rows and all(needle.lower() in addr.lower() for _, addr in rows)
          and any(addr == target for _, addr in rows),
          "search %r shows %d matching resources" % (needle, len(rows)))
    page.fill("#search", "no-such-address-anywhere")
    settle(page)
    check(visible(page) == [] and page.inner_text("#shown").startswith("showing 0 of"),
          "search with no match shows nothing")
    if shots:
        page.fill("#search", "web")
        settle(page)
        page.screenshot(path=str(pathlib.Path(shots) / "plan-report-search.png"), full_page=True)
    page.fill("#search", "")
    settle(page)
    check(len(visible(page)) == len(all_rows), "clearing the search shows everything")

    # Collapsible diffs: collapsed at first, a graph node opens its resource.
    check(page.eval_on_selector_all("details.res[open]", "els => els.length") == 0,
          "diffs start collapsed")
    node = page.query_selector("svg.graph a.node")
    if node is not None:
        addr = node.get_attribute("data-address")
        node.click()
        page.wait_for_timeout(100)
        is_open = page.eval_on_selector(
            "details.res[data-address='%s']" % addr, "e => e.open")
        check(is_open, "clicking graph node %s opens its diff" % addr)
    page.click("#expand")
    check(page.eval_on_selector_all("details.res:not([open])", "els => els.length") == 0,
          "expand all opens every diff")
    if shots:
        page.screenshot(path=str(pathlib.Path(shots) / "plan-report-expanded.png"), full_page=True)
    page.click("#collapse")
    check(page.eval_on_selector_all("details.res[open]", "els => els.length") == 0,
          "collapse all closes them")

    check(not errors, "no console errors or warnings: %s" % errors)
    check(not requests, "no network requests: %s" % requests)
    page.close()


def check_large(browser, path, count, budget):
    errors, requests = [], []
    # A warm-up load so the budget measures the report, not the browser's first start.
    warm = browser.new_page()
    warm.goto("about:blank")
    warm.close()
    # The best of three loads: the machine running the tests is shared (other tests, other
    # jobs), and one slow load says more about it than about the report.
    took = None
    for attempt in range(3):
        if attempt:
            page.close()
        page, t = open_page(browser, path, errors, requests)
        took = t if took is None else min(took, t)
        if took < budget:
            break
    n = page.eval_on_selector_all("details.res", "els => els.length")
    check(n == count, "large report lists %d resources" % n)
    nav = page.evaluate(
        "() => { const e = performance.getEntriesByType('navigation')[0];"
        " return e ? e.loadEventEnd - e.startTime : null; }")
    check(took < budget, "large report loaded in %.2f s (navigation to load event %.0f ms; budget %.1f s)"
          % (took, nav or -1, budget))
    start = time.monotonic()
    page.fill("#search", "server.s9999")
    settle(page)
    rows = visible(page)
    check(any(addr == "server.s9999" for _, addr in rows), "search works on the large report")
    check(time.monotonic() - start < budget, "search on %d resources within the budget" % count)
    # Large reports render a diff when its entry is opened.
    page.click("details.res[data-address='server.s9999'] > summary")
    page.wait_for_timeout(100)
    lines = page.eval_on_selector_all(
        "details.res[data-address='server.s9999'] pre.diff span", "els => els.map(e => e.textContent)")
    check(any(l.split() == ["+", "plan", "=", '"small"'] for l in lines),
          "opening an entry of the large report shows its diff (%d lines)" % len(lines))
    check(not errors, "no console errors on the large report: %s" % errors)
    check(not requests, "no network requests on the large report: %s" % requests)
    page.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--large")
    ap.add_argument("--large-count", type=int, default=10000)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--screenshots")
    a = ap.parse_args()
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=a.chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            check_small(browser, a.report, a.screenshots)
            if a.large:
                check_large(browser, a.large, a.large_count, a.budget)
        except Failed as e:
            print("FAILED:", e)
            return 1
        finally:
            browser.close()
    print("all browser checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
