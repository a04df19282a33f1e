#!/usr/bin/env python3
"""dashboard_webdriver.py -- the live dashboard in a real browser (SPEC 11).

Run by tests/test_dashboard.c (meson test `dashboard`) while it keeps
auctions flowing through a live exchange: headless Chromium driven over
WebDriver (Debian's python3-selenium and chromium-driver) opens the page
and, in real time (no virtual time), checks what a person would see:

  1. the mode pill says "live": the page renders the SSE stream /api/stream;
  2. total-auctions changes twice more while the pill stays "live", and the
     page fetched /api/stats no more meanwhile (Resource Timing), so the
     updates came from stream events, not from polling;
  3. the bidder table has a row per --bidder with numbers in it;
  4. every --alert is listed in the alerts card;
  5. the browser logged no error (a script or style the Content-Security-
     Policy refused, a JavaScript exception).

Then it saves a screenshot to every --screenshot path (on failure, to the
first one only, to show what went wrong). Prints what it saw on
stdout; on any failure prints "FAIL: ..." and exits 1 (2 when Selenium or
the browser cannot be started at all).
"""
import argparse
import json
import os
import re
import sys
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
except ImportError as e:
    print("FAIL: python3-selenium is needed (%s) for %s; tools/install-deps installs it"
          % (e, sys.executable))
    sys.exit(2)


class Failure(Exception):
    pass


def log(fmt, *args):
    print("webdriver: " + (fmt % args if args else fmt), flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="the dashboard, e.g. http://127.0.0.1:8081/")
    p.add_argument("--profile", required=True, help="a fresh directory for Chromium's profile")
    p.add_argument("--screenshot", action="append", default=[],
                   help="PNG to write when all passed (repeatable); the first also on failure")
    p.add_argument("--bidder", action="append", default=[], help="a bidder id the table must show")
    p.add_argument("--alert", action="append", default=[], help="an alert name the page must show")
    p.add_argument("--timeout-s", type=float, default=30, help="bound for each wait, seconds")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    p.add_argument("--driver-log", help="where chromedriver writes its log")
    return p.parse_args(argv)


def start_browser(args):
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        # Without these Chromium reaches for the network at start, and this
        # machine refuses every connection that is not to loopback.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--user-data-dir=" + args.profile,
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=args.chromedriver, log_path=args.driver_log)
    return webdriver.Chrome(service=service, options=opts)


# The page replaces the bidder rows and the alerts every second, so whatever
# is read from them is read in one script run: never a stale element.
def text_of(driver, element_id):
    text = driver.execute_script(
        "var e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
        element_id)
    if text is None:
        raise Failure("the page has no element with id '%s'" % element_id)
    return text.strip()


def number(text):
    """'1,234' -> 1234.0; None for the em dash shown before data."""
    digits = re.sub(r"[^0-9.]", "", text)
    return float(digits) if digits else None


def stats_fetches(driver):
    """How many /api/stats responses the page has received (Resource Timing)."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(function (e) { return e.name.indexOf('/api/stats') >= 0; }).length;")


def wait_for(what, timeout_s, probe, interval_s=0.1):
    """Calls probe() until it returns something truthy; raises Failure after timeout_s."""
    until = time.monotonic() + timeout_s
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= until:
            raise Failure("%s: not within %.0f s" % (what, timeout_s))
        time.sleep(interval_s)


def check_live_updates(driver, timeout_s):
    start = time.monotonic()
    wait_for("the mode pill to say 'live' (an event from /api/stream rendered)", timeout_s,
             lambda: text_of(driver, "mode") == "live")
    log("mode 'live' after %.1f s", time.monotonic() - start)

    def changed_from(value):
        def probe():
            mode = text_of(driver, "mode")
            if mode != "live":
                raise Failure("the mode pill went from 'live' to '%s' while traffic ran" % mode)
            now = number(text_of(driver, "total-auctions"))
            return now is not None and now != value and now
        return probe

    # The first change after 'live' is the baseline: by then the page's
    # first /api/stats fetch (made at load) has long been answered.
    first = number(text_of(driver, "total-auctions"))
    seen = [wait_for("total-auctions to change after 'live'", timeout_s, changed_from(first))]
    fetches = stats_fetches(driver)
    for i in (1, 2):
        t0 = time.monotonic()
        seen.append(wait_for("update %d of total-auctions from the stream" % i, timeout_s,
                             changed_from(seen[-1])))
        log("total-auctions %s -> %s after %.1f s (mode live)", int(seen[-2]), int(seen[-1]),
            time.monotonic() - t0)
    polled = stats_fetches(driver) - fetches
    if polled:
        raise Failure("the page fetched /api/stats %d time(s) while it said 'live'" % polled)
    if seen[-1] <= seen[0]:
        raise Failure("total-auctions did not grow: %s" % seen)
    per_s = number(text_of(driver, "auctions-per-s"))
    if not per_s:
        raise Failure("auctions-per-s shows '%s' while traffic runs" % text_of(driver, "auctions-per-s"))
    p99 = number(text_of(driver, "p99"))
    log("auctions/s %s, p99 %s ms, /api/stats fetched %d time(s) in all", int(per_s), p99,
        stats_fetches(driver))


def cells_of(driver, selector):
    """The text of each cell of each row matching selector, as lists."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(function (tr) {"
        "  return Array.from(tr.children).map(function (c) { return c.textContent.trim(); });"
        "});", selector)


def bidder_rows(driver):
    return {cells[0]: cells for cells in cells_of(driver, "#bidders tr") if cells}


def check_bidders(driver, bidders, timeout_s):
    header = [h.lower() for h in cells_of(driver, "thead tr")[0]]
    want = ["bidder", "calls/s", "calls", "bids", "wins", "win rate", "timeouts", "errors",
            "skipped", "share", "circuit", "spend"]
    if header != want:
        raise Failure("bidder table columns %s, want %s" % (header, want))
    rows = wait_for("a row in the bidder table for each of %s" % ", ".join(bidders), timeout_s,
                    lambda: (lambda r: all(b in r for b in bidders) and r)(bidder_rows(driver)))
    for b in bidders:
        cells = rows[b]
        if len(cells) != len(want):
            raise Failure("bidder %s: %d cells, want %d: %s" % (b, len(cells), len(want), cells))
        values = dict(zip(want, cells))
        for col in ("calls/s", "calls", "bids", "wins", "timeouts", "errors", "skipped", "spend"):
            if not re.fullmatch(r"[0-9][0-9,]*(\.[0-9]+)?", values[col]):
                raise Failure("bidder %s: %s is '%s', not a number" % (b, col, values[col]))
        for col in ("win rate", "share"):
            if not re.fullmatch(r"[0-9.]+%", values[col]):
                raise Failure("bidder %s: %s is '%s'" % (b, col, values[col]))
        if values["circuit"] not in ("closed", "open", "half-open"):
            raise Failure("bidder %s: circuit is '%s'" % (b, values["circuit"]))
        if number(values["calls"]) <= 0:
            raise Failure("bidder %s: no calls after seconds of traffic" % b)
        log("bidder %s: %s", b, json.dumps(values))


def check_alerts(driver, alerts, timeout_s):
    def shown():
        texts = ["\n".join(parts) for parts in cells_of(driver, "#alerts .alert")]
        return all(any(t.startswith(a + ":") for t in texts) for a in alerts) and texts
    texts = wait_for("the alerts card to list %s" % ", ".join(alerts), timeout_s, shown)
    count = text_of(driver, "alert-count")
    if count != "(%d)" % len(texts):
        raise Failure("alert count says '%s' for %d alerts" % (count, len(texts)))
    for t in texts:
        log("alert: %s", " / ".join(t.splitlines()))


def console_errors(driver):
    return [e.get("message", "") for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def check_console(driver):
    errors = console_errors(driver)
    if errors:
        raise Failure("the browser logged errors:\n  " + "\n  ".join(errors))


def save_screenshots(driver, paths):
    for path in paths:
        if not driver.save_screenshot(path):
            raise Failure("cannot write the screenshot %s" % path)
        log("screenshot %s (%d bytes)", path, os.path.getsize(path))


def main(argv):
    args = parse_args(argv)
    try:
        driver = start_browser(args)
    except WebDriverException as e:
        print("FAIL: cannot start %s through %s: %s" % (args.chromium, args.chromedriver,
                                                         str(e).strip()))
        return 2
    try:
        driver.set_page_load_timeout(args.timeout_s)
        # The viewport itself 1280 x 900 (a headless window's size is not its
        # viewport's), so the screenshot has the size of the README's.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 900, "deviceScaleFactor": 1,
                                "mobile": False})
        log("%s, opening %s", driver.capabilities.get("browserVersion", "chromium"), args.url)
        driver.get(args.url)
        check_live_updates(driver, args.timeout_s)
        check_bidders(driver, args.bidder, args.timeout_s)
        check_alerts(driver, args.alert, args.timeout_s)
        check_console(driver)
        save_screenshots(driver, args.screenshot)
    except (Failure, WebDriverException) as e:
        print("FAIL: %s" % str(e).strip())
        try:
            for message in console_errors(driver):  # e.g. what the CSP refused
                print("browser console: %s" % message)
            save_screenshots(driver, args.screenshot[:1])
        except WebDriverException:
            pass
        return 1
    finally:
        driver.quit()
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
