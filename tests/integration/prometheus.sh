#!/usr/bin/env bash
# tests/integration/prometheus.sh - the /metrics endpoint, a real Prometheus
# server scraping it, and the Grafana dashboard over those metrics.
#
#   1. A workload (tests/progs/phased, evolving mode) runs and then idles;
#      hakmem-probe --publish writes the eBPF kernel figures into its segment
#      (when eBPF works here; else the test writes a kernel section itself, so
#      the hakmem_kernel_* metrics exist either way).
#   2. `hakmem-tuner --listen 127.0.0.1:PORT` (exporter only, free port):
#      GET /metrics is the Prometheus text format, equals the names of
#      `hakmem-stat --prometheus` (one writer, tools/metrics.c), has the
#      workload's counters; 404 / 405 for other paths / methods.
#      `promtool check metrics` is clean (no lint message) on both outputs;
#      names follow the conventions (base units, _total on counters only and
#      once, HELP in the exported unit, hakmem_build_info, comm/exe labels,
#      per-class ghosts and THP state).
#   3. dashboards/hakmem-grafana.json is valid Grafana dashboard JSON (schema
#      version, unique panel ids, grid inside 24 columns without overlaps,
#      datasource refs, targets with refId and expr, template variables) and
#      every hakmem_* metric it queries is present in the /metrics output.
#   4. Prometheus (Debian package) on loopback, free port, temporary config and
#      --storage.tsdb.path: the target is up, the HTTP API finds a hakmem metric
#      with a non-zero value, and every dashboard query is valid PromQL that
#      returns data; the server is stopped afterwards.
# Exit 0 pass, 77 skip (reason on the last line), anything else fail.
set -u
. "$(dirname "$0")/../lib.sh"
TUNER=$B/hakmem-tuner
STAT=$B/hakmem-stat
PROBE=$B/hakmem-probe
PHASED=$B/tests/progs/phased
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}
DASH=$ROOT/dashboards/hakmem-grafana.json

ok() { echo "ok: $*"; }

[ -f "$LIB" ] || skip "libhakmem.so not built ($LIB)"
[ -x "$TUNER" ] || skip "hakmem-tuner not built ($TUNER)"
[ -x "$STAT" ] || skip "hakmem-stat not built ($STAT)"
[ -x "$PHASED" ] || skip "tests/progs/phased not built ($PHASED)"
[ -x "$PROMETHEUS" ] || skip "prometheus missing (apt-get install prometheus, or make deps)"
command -v python3 >/dev/null || skip "python3 missing"
command -v cc >/dev/null || skip "cc missing"
[ -d /dev/shm ] && [ -w /dev/shm ] || skip "no writable /dev/shm"

TMP=$T
WPID= TPID= PPID_= PROMPID=
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; }
cleanup() {
  stop "$PROMPID"; stop "$TPID"; stop "$PPID_"; stop "$WPID"
}
at_exit cleanup
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# get URL [METHOD]: body on stdout; the status code in $TMP/code
get() {
  python3 - "$1" "${2:-GET}" "$TMP/code" <<'EOF'
import sys, urllib.request, urllib.error
url, method, code = sys.argv[1:4]
try:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=20) as r:
        body, status = r.read(), r.status
except urllib.error.HTTPError as e:
    body, status = e.read(), e.code
open(code, "w").write(str(status))
sys.stdout.write(body.decode("utf-8", "replace"))
EOF
}

echo "== workload: phased, evolving, then idle"
env HAKMEM_MODE=evolving HAKMEM_TUNE_INTERVAL_MS=100 LD_PRELOAD="$LIB" \
  "$PHASED" -r 3 -p 300 -c 3 -w 1500 -i 60000 >"$TMP/phased.out" 2>&1 &
WPID=$!
for _ in $(seq 200); do [ -e "/dev/shm/hakmem.$WPID" ] && break; sleep 0.01; done
[ -e "/dev/shm/hakmem.$WPID" ] || fail "no segment for the workload"

echo "== kernel figures (eBPF) for the workload"
KERNEL=
if [ -x "$PROBE" ] && "$PROBE" --check >/dev/null 2>&1; then
  "$PROBE" -p "$WPID" --publish -i 0.2 -q >"$TMP/probe.out" 2>&1 &
  PPID_=$!
  KERNEL="hakmem-probe --publish"
fi
# wait for the phases to end (the workload prints "summary" before idling)
for _ in $(seq 600); do grep -q '^summary' "$TMP/phased.out" && break; sleep 0.05; done
grep -q '^summary' "$TMP/phased.out" || { cat "$TMP/phased.out"; fail "workload did not finish its phases"; }
sleep 0.5
if [ -n "$KERNEL" ] && ! grep -q 'hakmem_kernel_munmap_calls_total{pid="'"$WPID"'"' <("$STAT" --prometheus -p "$WPID"); then
  echo "hakmem-probe did not publish:"; cat "$TMP/probe.out"
  stop "$PPID_"; PPID_=; KERNEL=
fi
if [ -z "$KERNEL" ]; then
  # no eBPF here: publish a kernel section the way hakmem-probe does (seqlock gen, then the figures)
  cat >"$TMP/kpub.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "hakmem/shm.h"
int main(int argc, char **argv) {
    hak_shm_handle_t h;
    if (argc < 2 || hak_shm_open_pid(atoi(argv[1]), &h) != 0) return 1;
    hak_shm_kernel_t *k = &h.shm->kernel;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    __atomic_store_n(&k->gen, k->gen | 1, __ATOMIC_RELEASE);
    k->munmap_calls = 40, k->munmap_bytes = 40ull << 21, k->munmap_ns_total = 40 * 90000ull;
    k->munmap_outside_flush = 0, k->madvise_calls = 3, k->madvise_ns_total = 3000;
    k->updated_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    __atomic_store_n(&k->gen, (k->gen | 1) + 1, __ATOMIC_RELEASE);
    hak_shm_close(&h);
    return 0;
}
EOF
  cc -std=gnu11 -I"$ROOT/include" -o "$TMP/kpub" "$TMP/kpub.c" "$B/obj/shm_read.o" || fail "kernel publisher"
  "$TMP/kpub" "$WPID" || fail "kernel publisher could not write the segment"
  KERNEL="kernel section written by the test (no eBPF here)"
fi
echo "kernel figures: $KERNEL"

echo "== hakmem-tuner --listen (exporter only)"
PORT=$(free_port)
"$TUNER" --listen "127.0.0.1:$PORT" >"$TMP/tuner.out" 2>&1 &
TPID=$!
for _ in $(seq 100); do grep -q serving "$TMP/tuner.out" && break; sleep 0.05; done
grep -q "serving http://127.0.0.1:$PORT/metrics" "$TMP/tuner.out" || { cat "$TMP/tuner.out"; fail "tuner not serving"; }
URL=http://127.0.0.1:$PORT/metrics
get "$URL" >"$TMP/metrics.txt"
[ "$(cat "$TMP/code")" = 200 ] || fail "GET /metrics: HTTP $(cat "$TMP/code")"
grep -q "^hakmem_cache_hits_total{pid=\"$WPID\",comm=\"phased\",exe=\"phased\"} [1-9]" "$TMP/metrics.txt" ||
  fail "/metrics has no non-zero hakmem_cache_hits_total for pid $WPID"
ok "GET /metrics: $(grep -c '^hakmem' "$TMP/metrics.txt") samples, the workload's hits non-zero"
get "$URL" HEAD >/dev/null; [ "$(cat "$TMP/code")" = 200 ] || fail "HEAD /metrics: HTTP $(cat "$TMP/code")"
get "http://127.0.0.1:$PORT/nope" >/dev/null; [ "$(cat "$TMP/code")" = 404 ] || fail "unknown path: HTTP $(cat "$TMP/code")"
get "$URL" POST >/dev/null; [ "$(cat "$TMP/code")" = 405 ] || fail "POST: HTTP $(cat "$TMP/code")"
ok "HEAD 200, unknown path 404, POST 405"
# same names as hakmem-stat --prometheus (one writer)
"$STAT" --prometheus -p "$WPID" >"$TMP/stat.txt" || fail "hakmem-stat --prometheus"
names() { sed -n 's/^\(hakmem_[a-z0-9_]*\).*/\1/p' "$1" | grep -v '^hakmem_stat_\|^hakmem_build_info$' | sort -u; }
diff <(names "$TMP/stat.txt") <(grep "pid=\"$WPID\"" "$TMP/metrics.txt" | sed -n 's/^\(hakmem_[a-z0-9_]*\).*/\1/p' | sort -u) ||
  fail "metric names differ between hakmem-stat --prometheus and /metrics"
ok "the same $(names "$TMP/stat.txt" | wc -l) metric names as hakmem-stat --prometheus"

echo "== Prometheus conventions (promtool check metrics, names, units)"
PROMTOOL=${PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}
[ -x "$PROMTOOL" ] || fail "promtool missing (the prometheus package: make deps)"
for f in metrics stat; do
  "$PROMTOOL" check metrics <"$TMP/$f.txt" >"$TMP/lint.$f" 2>&1 ||
    { cat "$TMP/lint.$f"; fail "promtool check metrics: $f output has lint problems"; }
  [ ! -s "$TMP/lint.$f" ] || { cat "$TMP/lint.$f"; fail "promtool check metrics printed warnings for $f"; }
done
ok "promtool check metrics: clean on /metrics and on hakmem-stat --prometheus"
# A process whose name is not UTF-8 (a name is any bytes) gets U+FFFD in its
# labels: the exposition stays valid for every process.
BADNAME=$TMP/$(printf 'q"b\\\xff\xfez')
cp "$PHASED" "$BADNAME"
env HAKMEM_MODE=fixed LD_PRELOAD="$LIB" "$BADNAME" -r 1 -p 2 -c 1 -w 100 -i 4000 >"$TMP/bad.out" 2>&1 &
BPID=$!
at_exit kill "$BPID"
for _ in $(seq 200); do [ -e "/dev/shm/hakmem.$BPID" ] && break; sleep 0.01; done
"$STAT" --prometheus -p "$BPID" >"$TMP/bad.txt" || fail "hakmem-stat --prometheus -p (bad name)"
"$PROMTOOL" check metrics <"$TMP/bad.txt" >"$TMP/lint.bad" 2>&1 || { cat "$TMP/lint.bad"; fail "promtool: a non-UTF-8 process name voids the exposition"; }
python3 - "$TMP/bad.txt" <<'EOF' || fail "the bad name is not escaped with U+FFFD"
import sys
t = open(sys.argv[1], "rb").read().decode("utf-8")          # strict: valid UTF-8 throughout
want = 'comm="q\\"b\\\\\ufffd\ufffdz"'
assert want in t, [l for l in t.splitlines() if "comm=" in l][:1]
EOF
ok "a process name that is not UTF-8: U+FFFD in its labels, promtool clean"
python3 - "$TMP/metrics.txt" "$WPID" <<'EOF' || fail "metric conventions"
import re, sys
text, wpid = open(sys.argv[1]).read(), sys.argv[2]
def fail(msg):
    print("FAIL: " + msg); sys.exit(1)
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
for n, t in types.items():
    if "_total_total" in n: fail("doubled suffix: " + n)
    if n.endswith("_total") != (t == "counter"): fail("%s typed %s: _total goes on counters only" % (n, t))
    if re.search(r"_(ns|nanoseconds|ms|milliseconds|us|microseconds|kib|mib)(_|$)", n): fail("not a base unit: " + n)
    if n.endswith("_seconds_total") or n.endswith("_seconds"):
        if re.search(r"nanosecond|millisecond", helps.get(n, "")): fail("HELP of %s names another unit: %r" % (n, helps[n]))
for n in ("hakmem_batch_flush_seconds_total", "hakmem_mmap_bytes_total", "hakmem_batch_flushed_bytes_total",
          "hakmem_control_requests_total", "hakmem_control_requests_applied_total"):
    if types.get(n) != "counter": fail("%s missing or not a counter (%r)" % (n, types.get(n)))
for n in ("hakmem_build_info", "hakmem_class_ghosts", "hakmem_class_thp_state", "hakmem_class_cap"):
    if types.get(n) != "gauge": fail("%s missing or not a gauge" % n)
if "hakmem_control_seq" in types: fail("hakmem_control_seq still exported (it is hakmem_control_requests_total)")
m = re.search(r'^hakmem_build_info\{version="(\d+\.\d+\.\d+)"[^}]*\} 1$', text, re.M)
if not m: fail("no hakmem_build_info{version=...} 1")
# every per-process sample names its program: pid, comm and exe
for line in text.splitlines():
    if line.startswith("hakmem_") and 'pid="%s"' % wpid in line and not re.match(
            r'^\w+\{pid="%s",comm="phased",exe="phased"' % wpid, line):
        fail("sample without comm/exe labels: " + line)
# the THP state set: exactly one state is 1 per class
states = {}
for cls, st, v in re.findall(r'^hakmem_class_thp_state\{pid="%s",[^}]*class="(\d+)"[^}]*state="(\w+)"\} (\d)$' % wpid, text, re.M):
    states.setdefault(cls, []).append(int(v))
if not states or any(sum(v) != 1 or len(v) != 4 for v in states.values()):
    fail("hakmem_class_thp_state: one of 4 states must be 1 per class: %r" % states)
print("ok: build %s; %d families; %d classes with a THP state" % (m.group(1), len(types), len(states)))
EOF

echo "== dashboards/hakmem-grafana.json"
python3 - "$DASH" "$TMP/metrics.txt" "$TMP/queries.txt" <<'EOF' || fail "Grafana dashboard"
import json, re, sys
dash_path, metrics_path, queries_path = sys.argv[1:4]
def fail(msg):
    print("FAIL: " + msg); sys.exit(1)
d = json.load(open(dash_path))
for k, t in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list), ("templating", dict),
             ("time", dict), ("version", int)):
    if not isinstance(d.get(k), t):
        fail("dashboard field %r missing or not %s" % (k, t.__name__))
if not 1 <= len(d["uid"]) <= 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", d["uid"]):
    fail("uid %r is not a valid Grafana uid" % d["uid"])
if d["schemaVersion"] < 30:
    fail("schemaVersion %d is too old for timeseries panels" % d["schemaVersion"])
variables = {v["name"]: v for v in d["templating"]["list"]}
for v in d["templating"]["list"]:
    if not v.get("name") or v.get("type") not in ("datasource", "query", "custom", "interval", "constant", "textbox"):
        fail("bad template variable %r" % v)
if variables.get("datasource", {}).get("query") != "prometheus":
    fail("no Prometheus datasource variable")
ids, boxes, exprs, kinds = set(), [], [], {"timeseries", "stat", "row", "gauge", "bargauge", "table", "text"}
for p in d["panels"]:
    if p.get("type") not in kinds:
        fail("panel %r: unknown type %r" % (p.get("title"), p.get("type")))
    if not isinstance(p.get("id"), int) or p["id"] in ids:
        fail("panel %r: id missing or duplicated" % p.get("title"))
    ids.add(p["id"])
    if not p.get("title"):
        fail("panel %d has no title" % p["id"])
    g = p.get("gridPos", {})
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] < 0 or g["x"] + g["w"] > 24 or g["w"] < 1 or g["h"] < 1:
        fail("panel %r: gridPos %r outside the 24-column grid" % (p["title"], g))
    for (bx, by, bw, bh, bt) in boxes:
        if g["x"] < bx + bw and bx < g["x"] + g["w"] and g["y"] < by + bh and by < g["y"] + g["h"]:
            fail("panels %r and %r overlap" % (bt, p["title"]))
    boxes.append((g["x"], g["y"], g["w"], g["h"], p["title"]))
    if p["type"] == "row":
        continue
    ds = p.get("datasource", {})
    if ds.get("type") != "prometheus" or ds.get("uid") != "${datasource}":
        fail("panel %r: datasource %r is not the dashboard's Prometheus variable" % (p["title"], ds))
    ts = p.get("targets")
    if not ts:
        fail("panel %r has no targets" % p["title"])
    refs = [t.get("refId") for t in ts]
    if len(set(refs)) != len(refs) or not all(refs):
        fail("panel %r: refIds missing or duplicated" % p["title"])
    for t in ts:
        if not t.get("expr"):
            fail("panel %r: target without expr" % p["title"])
        exprs.append((p["title"], t["expr"]))
for v in d["templating"]["list"]:
    if v["type"] == "query":
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        exprs.append(("variable " + v["name"], q))
print("dashboard %r: %d panels, %d queries, variables %s" % (d["title"], len(d["panels"]), len(exprs), sorted(variables)))
# every metric name the dashboard queries is in the /metrics output
have = set(re.findall(r"^(hakmem_[a-z0-9_]+)[{ ]", open(metrics_path).read(), re.M))
used = set()
for _, e in exprs:
    used |= set(re.findall(r"\bhakmem_[a-z0-9_]+", e))
missing = sorted(used - have)
if missing:
    fail("metrics queried by the dashboard but absent from /metrics: %s" % missing)
print("all %d metric names the dashboard queries are in /metrics: %s" % (len(used), " ".join(sorted(used))))
# the panel queries, with the template variables filled in, for Prometheus
with open(queries_path, "w") as f:
    for title, e in exprs:
        if e.startswith("label_values("):
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", e)
            e = m.group(1)
        e = e.replace("$__rate_interval", "15s").replace("$comm", ".*").replace("$pid", ".*").replace("$exe", ".*")
        f.write(json.dumps({"title": title, "expr": e}) + "\n")
EOF
ok "Grafana dashboard JSON"

echo "== Prometheus scraping the endpoint"
PPORT=$(free_port)
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hakmem
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
mkdir -p "$TMP/data"
"$PROMETHEUS" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROMPID=$!
API=http://127.0.0.1:$PPORT
for _ in $(seq 200); do
  get "$API/-/ready" >/dev/null 2>&1 && [ "$(cat "$TMP/code" 2>/dev/null)" = 200 ] && break
  kill -0 "$PROMPID" 2>/dev/null || { cat "$TMP/prometheus.log"; fail "prometheus exited"; }
  sleep 0.1
done
[ "$(cat "$TMP/code")" = 200 ] || { cat "$TMP/prometheus.log"; fail "prometheus not ready"; }
ok "prometheus $("$PROMETHEUS" --version 2>&1 | head -1 | awk '{print $3}') ready on 127.0.0.1:$PPORT"
python3 - "$API" "$WPID" "$TMP/queries.txt" <<'EOF' || { tail -20 "$TMP/prometheus.log"; fail "Prometheus checks"; }
import json, sys, time, urllib.parse, urllib.request
api, wpid, queries = sys.argv[1], sys.argv[2], sys.argv[3]
def fail(msg):
    print("FAIL: " + msg); sys.exit(1)
def call(path, **params):
    url = api + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=20) as r:
        return json.load(r)
def query(q):
    r = call("/api/v1/query", query=q)
    if r.get("status") != "success":
        fail("query %s: %s" % (q, r))
    return r["data"]["result"]
deadline = time.time() + 60
while True:   # the target is up and scraped a few times (rates need two samples)
    ts = call("/api/v1/targets")["data"]["activeTargets"]
    up = [t for t in ts if t["health"] == "up"]
    n = query('count_over_time(hakmem_cache_hits_total{pid="%s"}[1m])' % wpid)
    if up and n and float(n[0]["value"][1]) >= 4:
        break
    if time.time() > deadline:
        fail("target not up / not scraped: %s" % ts)
    time.sleep(0.5)
print("target %s up, last scrape %s" % (up[0]["scrapeUrl"], up[0]["lastScrape"]))
res = query('hakmem_cache_hits_total{pid="%s"}' % wpid)
if not res or float(res[0]["value"][1]) <= 0:
    fail("hakmem_cache_hits_total for pid %s is not non-zero in Prometheus: %s" % (wpid, res))
print("ok: Prometheus has hakmem_cache_hits_total{pid=%s,comm=%s} = %s" %
      (wpid, res[0]["metric"].get("comm"), res[0]["value"][1]))
empty = []
for line in open(queries):
    q = json.loads(line)
    r = query(q["expr"])
    if not r:
        empty.append(q["title"])
    print("ok: %-40s %d series" % (q["title"][:40], len(r)))
# every query is valid PromQL; data may only be missing where nothing happened
# since the scrape began (the workload is idle): allow rate()-only panels to be empty,
# but not the gauges, knobs and totals
must = ["Hit rate (since start)", "Bytes cached", "Ring cap", "Batch threshold", "Memory mapped",
        "hakmem processes"]
bad = [t for t in empty if t in must]
if bad:
    fail("no data for %s" % bad)
print("prometheus checks passed (%d empty rate panels: idle workload)" % len(empty))
EOF
stop "$PROMPID"; PROMPID=
ok "prometheus stopped"
echo "PASS"
