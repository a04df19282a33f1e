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
  5. the advertisers table (SPEC 16) has a row per --advertiser with
     numbers, sorted by spend (largest first), and sorts by another column
     when its header is clicked;
  6. clicking an advertiser opens its view (#/advertiser/{id}): its totals,
     six charts of 60 points each, its health; and the view of each
     advertiser named in --advertiser-alert ID=ALERT lists that alert;
  7. with --rule NAME: the alert-rules panel adds a rule through its form
     (a wrong --token first: the API's error text is shown; then the right
     one) and deletes it again, and the token is found nowhere but in its
     field: not in the URL, localStorage or sessionStorage;
  8. the browser logged no error (a script or style the Content-Security-
     Policy refused, a JavaScript exception, a request that failed), but
     for the wrong token's 401 of step 7.

Screenshots: after step 6 the advertiser view goes to every
--advertiser-screenshot path, and the overview (the whole page, however
tall) to every --screenshot path, before step 7 changes the rules; on a
failure before that, the first --screenshot shows what the page looked
like. Prints what it saw on stdout; on any failure prints "FAIL: ..." and
exits 1 (2 when Selenium or the browser cannot be started at all).
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
    p.add_argument("--advertiser", action="append", default=[],
                   help="an advertiser id the advertisers table must show")
    p.add_argument("--advertiser-alert", action="append", default=[], metavar="ID=ALERT",
                   help="the view of advertiser ID must list alert ALERT")
    p.add_argument("--advertiser-screenshot", action="append", default=[],
                   help="PNG of an advertiser's view (repeatable)")
    p.add_argument("--rule", help="add and delete an alert rule of this name through the page")
    p.add_argument("--token", help="the exchange's admin token, for --rule")
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


ADV_COLUMNS = ["advertiser", "spend", "wins", "impr.", "clicks", "ctr", "conv.", "cvr", "cpc",
               "win rate"]
ADV_KEYS = ["id", "spend", "wins", "impressions", "clicks", "ctr", "conversions", "cvr", "cpc",
            "win_rate"]


def advertiser_rows(driver):
    """The advertisers table's rows, in the order shown, as lists of cell texts."""
    return [cells for cells in cells_of(driver, "#advertisers tr") if len(cells) > 1]


def sorted_by(rows, column, descending):
    """1 when rows are sorted by column (an index), blanks ('—') last."""
    values = [number(r[column]) for r in rows]
    known = [v for v in values if v is not None]
    if values[:len(known)] != known:
        return False
    return known == sorted(known, reverse=descending)


def click_header(driver, key):
    driver.execute_script(
        "document.querySelector('#adv-head th[data-key=\"' + arguments[0] + '\"]').click();",
        key)


def check_advertisers(driver, ids, timeout_s):
    header = [h.lower() for h in cells_of(driver, "#adv-table thead tr")[0]]
    if header != ADV_COLUMNS:
        raise Failure("advertisers table columns %s, want %s" % (header, ADV_COLUMNS))

    def ready():
        rows = advertiser_rows(driver)
        shown = {r[0] for r in rows}
        return all(i in shown for i in ids) and rows
    rows = wait_for("a row in the advertisers table for each of %s" % ", ".join(ids), timeout_s,
                    ready)
    for r in rows:
        values = dict(zip(ADV_KEYS, r))
        for col in ("spend", "wins", "impressions", "clicks", "conversions"):
            if not re.fullmatch(r"[0-9][0-9,]*(\.[0-9]+)?", values[col]):
                raise Failure("advertiser %s: %s is '%s', not a number" % (r[0], col, values[col]))
        for col in ("ctr", "cvr", "win_rate"):
            if not re.fullmatch(r"[0-9.]+%", values[col]):
                raise Failure("advertiser %s: %s is '%s'" % (r[0], col, values[col]))
        log("advertiser %s: %s", r[0], json.dumps(values))
    if not any(number(r[1]) for r in rows):
        raise Failure("no advertiser has spent anything after seconds of traffic")
    # Sorted by spend, largest first; then by a clicked column, both ways.
    wait_for("the advertisers sorted by spend, largest first", timeout_s,
             lambda: sorted_by(advertiser_rows(driver), 1, True))
    click_header(driver, "wins")
    wait_for("the advertisers sorted by wins after a click on its header", timeout_s,
             lambda: sorted_by(advertiser_rows(driver), 2, True))
    click_header(driver, "wins")
    wait_for("the advertisers sorted by wins, smallest first, after a second click", timeout_s,
             lambda: sorted_by(advertiser_rows(driver), 2, False))
    click_header(driver, "spend")
    rows = wait_for("the advertisers sorted by spend again", timeout_s,
                    lambda: sorted_by(advertiser_rows(driver), 1, True) and
                    advertiser_rows(driver))
    log("advertisers by spend: %s", ", ".join("%s %s" % (r[0], r[1]) for r in rows))
    return rows[0][0]


def visible(driver, element_id):
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]);"
        "return !!e && e.offsetParent !== null;", element_id)


def open_advertiser(driver, adv, timeout_s):
    """Clicks adv's link in the advertisers table and waits for its view."""
    wait_for("the overview with the advertisers table", timeout_s,
             lambda: visible(driver, "advertisers"))
    clicked = driver.execute_script(
        "var a = document.querySelector('#advertisers a[href=\"#/advertiser/' + arguments[0]"
        " + '\"]'); if (!a) return false; a.click(); return true;", adv)
    if not clicked:
        raise Failure("the advertisers table has no link to #/advertiser/%s" % adv)
    wait_for("the URL to be #/advertiser/%s" % adv, timeout_s,
             lambda: driver.execute_script("return location.hash;") == "#/advertiser/" + adv)
    wait_for("the view of %s (and the overview hidden)" % adv, timeout_s,
             lambda: visible(driver, "adv-view") and not visible(driver, "overview") and
             text_of(driver, "adv-title") == adv and number(text_of(driver, "adv-wins"))
             is not None)


def chart_points(driver):
    """{polyline id: number of points} of the advertiser view's charts."""
    return driver.execute_script(
        "var out = {}; document.querySelectorAll('#adv-charts polyline').forEach(function (p) {"
        "  var v = p.getAttribute('points').trim(); out[p.id] = v ? v.split(' ').length : 0;"
        "}); return out;")


def check_advertiser_view(driver, adv, timeout_s):
    open_advertiser(driver, adv, timeout_s)
    charts = wait_for("six charts of 60 points in the view of %s" % adv, timeout_s,
                      lambda: (lambda c: len(c) >= 6 and all(n == 60 for n in c.values()) and c)(
                          chart_points(driver)))
    for key in ("spend", "wins", "impressions", "clicks", "conversions"):
        if "mc-%s-%s" % (key, key) not in charts:
            raise Failure("the view of %s has no %s chart: %s" % (adv, key, sorted(charts)))
    wait_for("the wins chart of %s to show its wins" % adv, timeout_s,
             lambda: (number(text_of(driver, "mc-wins-max")) or 0) > 0)
    health = text_of(driver, "adv-health")
    if "circuit" not in health or "p95" not in health:
        raise Failure("the view of %s shows no health: '%s'" % (adv, health))
    values = {k: text_of(driver, "adv-" + k) for k in
              ("spend", "wins", "impressions", "clicks", "ctr", "conversions", "cvr", "cpc")}
    log("view of %s: %s; health: %s; charts: %s", adv, json.dumps(values), health,
        json.dumps(charts))


def go_back(driver, timeout_s):
    driver.execute_script("document.getElementById('adv-back').click();")
    wait_for("the overview after 'all advertisers'", timeout_s,
             lambda: visible(driver, "overview") and not visible(driver, "adv-view"))


def check_advertiser_alert(driver, spec, timeout_s):
    adv, _, alert = spec.partition("=")
    open_advertiser(driver, adv, timeout_s)
    texts = wait_for("the view of %s to list alert %s" % (adv, alert), timeout_s,
                     lambda: (lambda t: any(x.startswith(alert + ":") for x in t) and t)(
                         ["\n".join(c) for c in cells_of(driver, "#adv-alerts .alert")]))
    log("view of %s lists: %s", adv, " / ".join(texts))
    go_back(driver, timeout_s)


def fill(driver, fields):
    """Sets form fields by id (inputs typed into, selects chosen)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    for element_id, value in fields:
        e = driver.find_element(By.ID, element_id)
        if e.tag_name == "select":
            Select(e).select_by_visible_text(value)
        else:
            e.clear()
            e.send_keys(value)


def rule_names(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#rules .rule'))"
        ".map(function (r) { return r.dataset.name; });")


def check_rules(driver, name, token, timeout_s):
    """Adds rule `name` through the form (a wrong token first), then deletes it."""
    wait_for("the alert-rules panel to list the configured rules", timeout_s,
             lambda: rule_names(driver))
    fill(driver, [("rule-name", name), ("rule-metric", "no_bid_rate"), ("rule-subject", ""),
                  ("rule-op", "above"), ("rule-threshold", "0.9"), ("rule-window", "10"),
                  ("rule-severity", "critical"), ("rule-message", "nobody bids"),
                  ("rule-token", "not-" + token)])
    driver.execute_script("document.getElementById('rule-add').click();")
    error = wait_for("the API's refusal of a wrong token on the page", timeout_s,
                     lambda: text_of(driver, "rule-error"))
    if not error.startswith("HTTP 401"):
        raise Failure("a wrong token: the page says '%s', want the API's 401" % error)
    log("wrong token: '%s'", error)
    fill(driver, [("rule-token", token)])
    driver.execute_script("document.getElementById('rule-add').click();")

    def added():
        error = text_of(driver, "rule-error")
        if error:
            raise Failure("adding rule %s: the page says '%s'" % (name, error))
        rows = cells_of(driver, '#rules .rule[data-name="%s"] .rule-head' % name)
        return rows and rows[0]
    head = wait_for("rule %s in the alert-rules panel" % name, timeout_s, added)
    if "critical" not in head or not ({"ok", "firing"} & set(head)):
        raise Failure("rule %s is shown as %s, want severity critical and a state" % (name, head))
    log("rule added: %s", " / ".join(head))
    leaked = driver.execute_script(
        "var t = arguments[0], seen = [location.href, document.cookie];"
        "[localStorage, sessionStorage].forEach(function (s) {"
        "  for (var i = 0; i < s.length; i++) seen.push(s.key(i), s.getItem(s.key(i)));"
        "}); return seen.filter(function (v) { return v && v.indexOf(t) >= 0; });", token)
    if leaked:
        raise Failure("the token is kept outside its field: %s" % leaked)
    driver.execute_script(
        "document.querySelector('#rules .rule[data-name=\"' + arguments[0] + '\"] .del')"
        ".click();", name)
    wait_for("rule %s gone from the panel after 'delete'" % name, timeout_s,
             lambda: name not in rule_names(driver) and not text_of(driver, "rule-error"))
    log("rule %s deleted; status '%s'", name, text_of(driver, "rule-status"))


def save_full_page(driver, paths):
    """Screenshots of the whole page, however tall, then the 1280 x 900 viewport again."""
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    set_viewport(driver, min(max(height, 900), 3000))
    try:
        save_screenshots(driver, paths)
    finally:
        set_viewport(driver, 900)


def set_viewport(driver, height):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": height, "deviceScaleFactor": 1,
                            "mobile": False})


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
    shot = False  # the overview's screenshot is taken
    try:
        driver.set_page_load_timeout(args.timeout_s)
        # The viewport itself 1280 x 900 (a headless window's size is not its
        # viewport's), so the screenshot has the size of the README's.
        set_viewport(driver, 900)
        log("%s, opening %s", driver.capabilities.get("browserVersion", "chromium"), args.url)
        driver.get(args.url)
        check_live_updates(driver, args.timeout_s)
        check_bidders(driver, args.bidder, args.timeout_s)
        check_alerts(driver, args.alert, args.timeout_s)
        top = check_advertisers(driver, args.advertiser, args.timeout_s)
        check_advertiser_view(driver, top, args.timeout_s)
        save_screenshots(driver, args.advertiser_screenshot)
        go_back(driver, args.timeout_s)
        for spec in args.advertiser_alert:
            check_advertiser_alert(driver, spec, args.timeout_s)
        save_full_page(driver, args.screenshot)
        shot = True
        check_console(driver)
        if args.rule:
            check_rules(driver, args.rule, args.token or "", args.timeout_s)
            # The browser logs the refused write (the wrong token's 401) as an
            # error; that one is expected, nothing else is.
            errors = console_errors(driver)
            refused = [e for e in errors if "/api/alerts" in e and "status of 401" in e]
            if len(refused) > 1 or len(errors) > len(refused):
                raise Failure("the browser logged errors while rules were added and deleted:\n  "
                              + "\n  ".join(errors))
    except (Failure, WebDriverException) as e:
        print("FAIL: %s" % str(e).strip())
        try:
            for message in console_errors(driver):  # e.g. what the CSP refused
                print("browser console: %s" % message)
            if not shot:
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
