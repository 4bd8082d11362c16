#!/usr/bin/env bash
# tests/integration/dashboard_html.sh - the HTML report opened in headless Chromium.
#
# A real run (tests/progs/phased under HAKMEM_MODE=evolving, HAKMEM_HISTORY)
# makes the DB; `hakmem-report --format html` writes one file; Chromium
# (driven through chromedriver's WebDriver API on a loopback port) opens it
# from file:// and the test checks, in the rendered page:
#   - every timeline plot (ring cap, batch threshold, hit rate, rates, bytes)
#     and the what-if plot is an <svg> with a non-zero layout box whose
#     polylines have points and a non-zero rendered length;
#   - no resource was fetched (Performance API), no element refers outside;
#   - the numbers shown equal the DB's (sqlite3 CLI): large allocations,
#     hits, misses, hit rate (value and the text shown), evictions, flushes,
#     bytes released, peak mapped, decisions, share confirmed;
#   - axes read: the ring-cap plot's y ticks are whole numbers (an integer
#     knob), no tick label or axis title overlaps another one, every dashed
#     decision line carries a visible tag and a visible caption under the
#     timeline explains them (a printout has no hover);
#   - the screenshot (build/test-logs/dashboard_html.png, kept as an artifact)
#     shows the plots: pixels of the series colour are present.
# Also `chromium --dump-dom` of the same file (no WebDriver) shows the plots.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
REPORT=$B/hakmem-report
PHASED=$B/tests/progs/phased
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
DRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
ARTIFACT_DIR=$B/test-logs


[ -f "$LIB" ] || skip "libhakmem.so not built ($LIB)"
[ -x "$REPORT" ] || skip "hakmem-report not built ($REPORT)"
[ -x "$PHASED" ] || skip "tests/progs/phased not built ($PHASED)"
[ -x "$CHROMIUM" ] || skip "chromium missing (apt-get install chromium, or make deps)"
[ -x "$DRIVER" ] || skip "chromedriver missing (apt-get install chromium-driver, or make deps)"
command -v sqlite3 >/dev/null || skip "sqlite3 CLI missing"
command -v python3 >/dev/null || skip "python3 missing"

TMP=$T
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
}
at_exit cleanup
mkdir -p "$ARTIFACT_DIR"
DB=$TMP/history.db
q() { sqlite3 -batch -noheader "$DB" "$1"; }

echo "== a real run: phased, evolving, recorded in-process"
env HAKMEM_MODE=evolving HAKMEM_HISTORY="$DB" HAKMEM_TUNE_INTERVAL_MS=100 HAKMEM_IDLE_MS=400 LD_PRELOAD="$LIB" \
  "$PHASED" -r 3 -p 250 -c 4 -i 900 >"$TMP/phased.out" 2>&1 || { cat "$TMP/phased.out"; fail "phased failed"; }
cat "$TMP/phased.out"
R=$(q "SELECT MAX(id) FROM runs")
[ "$(q "SELECT COUNT(*) FROM samples WHERE run_id = $R")" -ge 5 ] || fail "too few samples"
HTML=$TMP/report.html
"$REPORT" --db "$DB" --run "$R" -o "$HTML" || fail "hakmem-report exited $?"
cp "$HTML" "$ARTIFACT_DIR/dashboard_html.html"

echo "== the numbers the page must show, from the DB"
L="(SELECT MAX(id) FROM samples WHERE run_id = $R)"
cat >"$TMP/expect.json" <<EOF
{"accesses": $(q "SELECT cache_hits + cache_misses FROM samples WHERE id = $L"),
 "hits": $(q "SELECT cache_hits FROM samples WHERE id = $L"),
 "misses": $(q "SELECT cache_misses FROM samples WHERE id = $L"),
 "evictions": $(q "SELECT evict_ring_full + evict_cap_lowered + evict_budget + evict_idle_trim + evict_uncacheable FROM samples WHERE id = $L"),
 "flushes": $(q "SELECT batch_flushes FROM samples WHERE id = $L"),
 "bytes_released": $(q "SELECT batch_bytes_flushed FROM samples WHERE id = $L"),
 "peak_mapped": $(q "SELECT MAX(peak_bytes_mapped) FROM samples WHERE run_id = $R"),
 "ring_cap_end": $(q "SELECT ring_cap FROM samples WHERE id = $L"),
 "decisions": $(q "SELECT COUNT(*) FROM decisions WHERE run_id = $R"),
 "confirmed": $(q "SELECT COUNT(*) FROM decisions WHERE run_id = $R AND grade = 1"),
 "refuted": $(q "SELECT COUNT(*) FROM decisions WHERE run_id = $R AND grade = 2")}
EOF
cat "$TMP/expect.json"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$DRIVER" --port="$PORT" >"$TMP/driver.log" 2>&1 &
DPID=$!

echo "== Chromium (headless, WebDriver on 127.0.0.1:$PORT)"
python3 - "$PORT" "$HTML" "$TMP/expect.json" "$ARTIFACT_DIR/dashboard_html.png" "$CHROMIUM" "$TMP/profile" <<'PYEOF'
import base64, json, re, struct, sys, time, urllib.request, zlib

port, html, expect_path, shot, chromium, profile = sys.argv[1:7]
base = "http://127.0.0.1:%s" % port
expect = json.load(open(expect_path))

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read().decode())

def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)

for _ in range(100):
    try:
        if call("GET", "/status")["value"].get("ready"):
            break
    except Exception:
        pass
    time.sleep(0.1)
else:
    fail("chromedriver did not start")

args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--user-data-dir=" + profile, "--window-size=1100,4200"]
caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args}}}}
sid = call("POST", "/session", caps)["value"]["sessionId"]
try:
    call("POST", "/session/%s/url" % sid, {"url": "file://" + html})
    js = r"""
    const plots = [...document.querySelectorAll('svg.plot')].map(s => {
      const r = s.getBoundingClientRect();
      const lines = [...s.querySelectorAll('polyline')];
      return {plot: s.dataset.plot, run: s.dataset.run, w: r.width, h: r.height,
              polylines: lines.length,
              points: lines.reduce((a, l) => a + l.points.numberOfItems, 0),
              length: lines.reduce((a, l) => a + l.getTotalLength(), 0),
              dots: s.querySelectorAll('circle').length,
              yticks: [...s.querySelectorAll('text.tick[text-anchor="end"]')].map(t => t.textContent),
              labels: [...s.querySelectorAll('text.tick, text.axis')].map(t => {
                const b = t.getBoundingClientRect();
                return {text: t.textContent, l: b.left, r: b.right, t: b.top, b: b.bottom};
              }),
              marks: s.querySelectorAll('line.mark').length,
              marklabels: [...s.querySelectorAll('text.marklabel')].filter(t => t.getBoundingClientRect().width > 0).length};
    });
    const captions = [...document.querySelectorAll('p.marks-caption')].map(p =>
      ({text: p.textContent, h: p.getBoundingClientRect().height}));
    const nums = [...document.querySelectorAll('[data-k]')].map(e =>
      ({k: e.dataset.k, v: e.dataset.value, text: e.textContent.trim()}));
    const res = performance.getEntriesByType('resource').map(e => e.name);
    const ext = [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'))
                .filter(u => !u.startsWith('#'));
    return {title: document.title, plots: plots, nums: nums, resources: res, external: ext, captions: captions,
            scripts: document.scripts.length};
    """
    page = call("POST", "/session/%s/execute/sync" % sid, {"script": js, "args": []})["value"]
    png = base64.b64decode(call("GET", "/session/%s/screenshot" % sid)["value"])
finally:
    try:
        call("DELETE", "/session/%s" % sid)
    except Exception:
        pass
open(shot, "wb").write(png)
print("title:", page["title"])
print("screenshot: %s (%d bytes)" % (shot, len(png)))

# --- plots rendered
want = {"ring_cap", "batch_threshold", "hit_rate", "rates", "bytes", "whatif"}
got = {p["plot"] for p in page["plots"]}
if not want <= got:
    fail("plots missing: %s (page has %s)" % (sorted(want - got), sorted(got)))
for p in page["plots"]:
    print("plot %-16s %4.0fx%-4.0f polylines %d points %d length %.0f" %
          (p["plot"], p["w"], p["h"], p["polylines"], p["points"], p["length"]))
    if p["w"] < 200 or p["h"] < 50:
        fail("plot %s has no layout box (%sx%s)" % (p["plot"], p["w"], p["h"]))
    if p["points"] < 2 and p["dots"] == 0:
        fail("plot %s is empty" % p["plot"])
    if p["points"] >= 2 and p["length"] <= 0:
        fail("plot %s: polylines of zero length" % p["plot"])

# --- axes and decision lines read without hovering
for p in page["plots"]:
    if p["plot"] == "ring_cap":
        if not p["yticks"] or not all(re.fullmatch(r"\d+", t) for t in p["yticks"]):
            fail("ring cap axis: ticks %s are not whole numbers" % p["yticks"])
        print("ok: ring cap axis ticks %s" % " ".join(p["yticks"]))
    ls = p["labels"]
    for i in range(len(ls)):
        for j in range(i + 1, len(ls)):
            a, b = ls[i], ls[j]
            if a["l"] < b["r"] - 0.5 and b["l"] < a["r"] - 0.5 and a["t"] < b["b"] - 0.5 and b["t"] < a["b"] - 0.5:
                fail("plot %s: labels %r and %r overlap" % (p["plot"], a["text"], b["text"]))
    if p["marklabels"] < p["marks"]:
        fail("plot %s: %d dashed lines, %d visible tags" % (p["plot"], p["marks"], p["marklabels"]))
print("ok: no overlapping tick labels or axis titles; every dashed line tagged")
if expect["decisions"]:
    cap = [c for c in page["captions"] if c["h"] > 0 and "#1" in c["text"]]
    if not cap:
        fail("no visible caption explains the decision lines: %s" % page["captions"])
    print("ok: caption: %s" % cap[0]["text"][:120])

# --- self-contained
if page["resources"]:
    fail("resources fetched: %s" % page["resources"])
if page["external"] or page["scripts"]:
    fail("external references %s, scripts %d" % (page["external"], page["scripts"]))

# --- numbers equal the DB's
nums = {}
for n in page["nums"]:
    nums.setdefault(n["k"], n)
def val(k):
    if k not in nums:
        fail("no %s in the page" % k)
    return nums[k]
for k in ("accesses", "hits", "misses", "evictions", "flushes", "decisions", "ring_cap_end"):
    n = val(k)
    if int(n["v"]) != expect[k] or n["text"] != str(expect[k]):
        fail("%s: page shows %r (value %s), DB says %d" % (k, n["text"], n["v"], expect[k]))
    print("ok: %s = %s" % (k, n["text"]))
for k in ("bytes_released", "peak_mapped"):
    n = val(k)
    if int(n["v"]) != expect[k]:
        fail("%s: page value %s, DB says %d" % (k, n["v"], expect[k]))
    print("ok: %s = %s (%s)" % (k, n["v"], n["text"]))
hr = expect["hits"] / expect["accesses"]
n = val("hit_rate")
if abs(float(n["v"]) - hr) > 1e-6 or n["text"] != "%.2f%%" % (hr * 100):
    fail("hit rate: page shows %r (value %s), DB says %.6f" % (n["text"], n["v"], hr))
print("ok: hit_rate = %s" % n["text"])
graded = expect["confirmed"] + expect["refuted"]
n = val("confirmed_share")
if graded:
    share = expect["confirmed"] / graded
    if abs(float(n["v"]) - share) > 1e-6 or n["text"] != "%.2f%%" % (share * 100):
        fail("share confirmed: page %r, DB %.4f" % (n["text"], share))
elif n["v"] != "null":
    fail("share confirmed should be n/a")
print("ok: confirmed_share = %s" % n["text"])
if len([x for x in page["nums"] if x["k"] == "seq"]) != expect["decisions"]:
    fail("decision rows differ from the DB's %d decisions" % expect["decisions"])
print("ok: %d decision rows" % expect["decisions"])

# --- the screenshot shows the plots: decode the PNG, count series-colour pixels
def png_pixels(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        ln, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + ln]
        if typ == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError("unsupported PNG (depth %d, colour type %d)" % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif typ == b"IDAT":
            idat += body
        pos += 12 + ln
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    i = 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(line)
        prev = line
    return w, h, bpp, out
w, h, bpp, rows = png_pixels(png)
blue = sum(1 for r in rows for x in range(0, len(r), bpp)
           if abs(r[x] - 0x1f) < 24 and abs(r[x + 1] - 0x6f) < 24 and abs(r[x + 2] - 0xeb) < 24)
print("screenshot %dx%d: %d pixels of the series colour" % (w, h, blue))
if blue < 300:
    fail("the screenshot shows no plotted series")
print("browser checks passed")
PYEOF
[ $? -eq 0 ] || fail "browser checks"

echo "== chromium --dump-dom (no WebDriver)"
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$(mktemp -d "$TMP/p.XXXX")" \
  --dump-dom "file://$HTML" >"$TMP/dom.html" 2>"$TMP/chromium.err" || { tail "$TMP/chromium.err"; fail "chromium --dump-dom"; }
n=$(grep -o '<svg class="plot"' "$TMP/dom.html" | wc -l)
[ "$n" -ge 6 ] || fail "dumped DOM has $n plots"
grep -q "data-k=\"hits\" data-value=\"$(q "SELECT cache_hits FROM samples WHERE id = $L")\"" "$TMP/dom.html" ||
  fail "dumped DOM lacks the hits figure"
echo "dumped DOM: $n plots"
echo "artifacts: $ARTIFACT_DIR/dashboard_html.png $ARTIFACT_DIR/dashboard_html.html"
echo "PASS"
