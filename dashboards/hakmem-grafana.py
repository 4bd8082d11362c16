#!/usr/bin/env python3
"""dashboards/hakmem-grafana.py - writes dashboards/hakmem-grafana.json (the Grafana
dashboard over the metrics of hakmem-tuner --listen / hakmem-stat --prometheus).
Edit this script, run it from the top directory (python3 dashboards/hakmem-grafana.py),
commit both.  tests/integration/prometheus.sh checks the JSON and its queries."""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'exe=~"$exe",comm=~"$comm",pid=~"$pid"'
LEG = "{{comm}} ({{pid}})"
panels = []
nid = [0]
def pid():
    nid[0] += 1
    return nid[0]
def row(title, y):
    panels.append({"id": pid(), "type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
def targets(qs):
    out = []
    for i, q in enumerate(qs):
        expr, leg = q if isinstance(q, tuple) else (q, LEG)
        out.append({"datasource": DS, "expr": expr, "legendFormat": leg, "refId": chr(65 + i), "range": True})
    return out
def ts(title, desc, qs, unit, x, y, w=12, h=8, mn=None, mx=None, stack=False, draw="line"):
    d = {"unit": unit, "custom": {"drawStyle": draw, "lineWidth": 2, "fillOpacity": 10, "showPoints": "never",
                                  "spanNulls": False, "lineInterpolation": "stepAfter" if draw == "steps" else "linear",
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}}
    if draw == "steps":
        d["custom"]["drawStyle"] = "line"
    if mn is not None: d["min"] = mn
    if mx is not None: d["max"] = mx
    panels.append({"id": pid(), "type": "timeseries", "title": title, "description": desc, "datasource": DS,
                   "gridPos": {"h": h, "w": w, "x": x, "y": y},
                   "fieldConfig": {"defaults": d, "overrides": []},
                   "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                               "tooltip": {"mode": "multi", "sort": "none"}},
                   "targets": targets(qs)})
def stat(title, desc, q, unit, x, y, w, h=4, decimals=None):
    d = {"unit": unit, "color": {"mode": "thresholds"},
         "thresholds": {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}}
    if decimals is not None: d["decimals"] = decimals
    panels.append({"id": pid(), "type": "stat", "title": title, "description": desc, "datasource": DS,
                   "gridPos": {"h": h, "w": w, "x": x, "y": y},
                   "fieldConfig": {"defaults": d, "overrides": []},
                   "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                               "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                               "orientation": "auto", "textMode": "auto"},
                   "targets": targets([q])})

r = lambda m: 'rate(%s{%s}[$__rate_interval])' % (m, SEL)
sr = lambda m: 'sum by (comm, pid) (%s)' % r(m)

row("Overview", 0)
stat("hakmem processes", "Processes whose telemetry segment the exporter read (hakmem_stat_processes).",
     ("hakmem_stat_processes", "processes"), "none", 0, 1, 4)
stat("Hit rate (since start)", "cache_hits / (cache_hits + cache_misses) over each process's lifetime.",
     'sum(hakmem_cache_hits_total{%s}) / (sum(hakmem_cache_hits_total{%s}) + sum(hakmem_cache_misses_total{%s}))' % (SEL, SEL, SEL),
     "percentunit", 4, 1, 5, decimals=2)
stat("Bytes cached", "Bytes held warm in BigCache rings now (hakmem_cached_bytes), all selected processes.",
     ("sum(hakmem_cached_bytes{%s})" % SEL, "cached"), "bytes", 9, 1, 5)
stat("Bytes pending", "Bytes waiting in Batch for the next flush (hakmem_pending_bytes).",
     ("sum(hakmem_pending_bytes{%s})" % SEL, "pending"), "bytes", 14, 1, 5)
stat("Decisions logged", "Decisions logged in the segments' decision rings (hakmem_decisions_total).",
     ("sum(hakmem_decisions_total{%s})" % SEL, "decisions"), "none", 19, 1, 5)

row("BigCache", 5)
ts("Hit rate", "Large allocations served from a ring, per interval: rate(hits) / (rate(hits) + rate(misses)).",
   ["%s / (%s + %s)" % (sr("hakmem_cache_hits_total"), sr("hakmem_cache_hits_total"), sr("hakmem_cache_misses_total"))],
   "percentunit", 0, 6, mn=0, mx=1)
ts("Large allocations per second", "hakmem_large_allocs_total, split into ring hits and misses (fresh mappings).",
   [(sr("hakmem_large_allocs_total"), "allocs {{comm}} ({{pid}})"), (sr("hakmem_cache_hits_total"), "hits {{comm}} ({{pid}})"),
    (sr("hakmem_cache_misses_total"), "misses {{comm}} ({{pid}})")], "ops", 12, 6, mn=0)
ts("Evictions per second, by reason", "Blocks handed to Batch: ring full, cap lowered, budget, idle trim, uncacheable.",
   [(sr("hakmem_evict_%s_total" % e), "%s {{comm}} ({{pid}})" % e) for e in
    ("ring_full", "cap_lowered", "budget", "idle_trim", "uncacheable")], "ops", 0, 14, mn=0, stack=True)
ts("Bytes cached and pending", "hakmem_cached_bytes (warm in the rings) and hakmem_pending_bytes (waiting in Batch).",
   [("hakmem_cached_bytes{%s}" % SEL, "cached {{comm}} ({{pid}})"), ("hakmem_pending_bytes{%s}" % SEL, "pending {{comm}} ({{pid}})")],
   "bytes", 12, 14, mn=0)

row("Batch", 22)
ts("Flushes per second", "Batch flushes and the munmap calls they made (one per coalesced range).",
   [(sr("hakmem_batch_flushes_total"), "flushes {{comm}} ({{pid}})"), (sr("hakmem_munmap_calls_total"), "munmap calls {{comm}} ({{pid}})")],
   "ops", 0, 23, mn=0)
ts("Bytes released per second", "Block bytes released by Batch flushes (hakmem_batch_flushed_bytes_total).",
   [sr("hakmem_batch_flushed_bytes_total")], "Bps", 12, 23, mn=0)
ts("Flush time", "Mean time per flush, and the share of one core spent flushing (hakmem_batch_flush_seconds_total).",
   [("%s / %s" % (sr("hakmem_batch_flush_seconds_total"), sr("hakmem_batch_flushes_total")), "per flush {{comm}} ({{pid}})")],
   "s", 0, 31, mn=0)
ts("Memory mapped", "Address space hakmem holds for large blocks (hakmem_mapped_bytes), the program's part (hakmem_live_bytes) and the high-water mark (hakmem_peak_mapped_bytes).",
   [("hakmem_mapped_bytes{%s}" % SEL, "mapped {{comm}} ({{pid}})"), ("hakmem_live_bytes{%s}" % SEL, "live {{comm}} ({{pid}})"),
    ("hakmem_peak_mapped_bytes{%s}" % SEL, "peak {{comm}} ({{pid}})")], "bytes", 12, 31, mn=0)

row("Knobs and tuner", 39)
ts("Ring cap", "BIGCACHE_RING_CAP in force (hakmem_knob_ring_cap), moved by the tuner in evolving mode.",
   [("hakmem_knob_ring_cap{%s}" % SEL, "ring cap {{comm}} ({{pid}})")], "none", 0, 40, mn=0, draw="steps")
ts("Batch threshold", "BATCH_THRESHOLD in force (hakmem_knob_batch_threshold_bytes).",
   [("hakmem_knob_batch_threshold_bytes{%s}" % SEL, "batch threshold {{comm}} ({{pid}})")], "bytes", 12, 40, mn=0, draw="steps")
ts("Tuner decisions", "Decisions per interval (increase of hakmem_decisions_total) and control requests applied.",
   [("sum by (comm, pid) (increase(hakmem_decisions_total{%s}[$__rate_interval]))" % SEL, "decisions {{comm}} ({{pid}})"),
    ("sum by (comm, pid) (increase(hakmem_ctl_applied_total{%s}[$__rate_interval]))" % SEL, "control applied {{comm}} ({{pid}})")],
   "none", 0, 48, mn=0, draw="bars")
ts("Blocks cached per size class", "Blocks in each class's ring (hakmem_class_cached_blocks) against its cap (hakmem_class_cap).",
   [("hakmem_class_cached_blocks{%s}" % SEL, "cached {{comm}} ({{pid}}) {{size}} B"),
    ("hakmem_class_cap{%s}" % SEL, "cap {{comm}} ({{pid}}) {{size}} B")], "none", 12, 48, mn=0)
ts("Ghost demand per size class", "Capacity evictions not yet matched by a miss (hakmem_class_ghosts): blocks a bigger ring of the class would serve now; the tuner raises the class cap on them.",
   [("hakmem_class_ghosts{%s}" % SEL, "ghosts {{comm}} ({{pid}}) {{size}} B")], "none", 0, 56, mn=0)
ts("Huge pages per size class", "THP choice of each class of 2 MiB and more (hakmem_class_thp_state == 1: undecided while sampling, then huge or small) and the share of the sampled pages the program touched.",
   [("hakmem_class_thp_state{%s,state=~\"huge|small|undecided\"} == 1" % SEL, "{{state}} {{comm}} ({{pid}}) {{size}} B")],
   "none", 12, 56, mn=0, draw="steps")

row("Kernel (eBPF, when hakmem-probe --publish runs)", 64)
ts("munmap latency", "Mean kernel time per munmap call of hakmem's flushes, measured by the eBPF probe (hakmem_kernel_munmap_seconds_total / hakmem_kernel_munmap_calls_total). Empty unless hakmem-probe --publish runs for the process.",
   [("%s / %s" % (sr("hakmem_kernel_munmap_seconds_total"), sr("hakmem_kernel_munmap_calls_total")), "munmap {{comm}} ({{pid}})")],
   "s", 0, 65, mn=0)
ts("munmaps outside flush windows", "munmap calls of the process outside Batch flush windows (hakmem_kernel_munmap_outside_flush_total): 0 for hakmem blocks; anything else comes from other code in the process.",
   [("sum by (comm, pid) (increase(hakmem_kernel_munmap_outside_flush_total{%s}[$__rate_interval]))" % SEL, "outside {{comm}} ({{pid}})"),
    (sr("hakmem_kernel_munmap_calls_total"), "munmap calls/s {{comm}} ({{pid}})")], "none", 12, 65, mn=0)

dash = {
  "__inputs": [],
  "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0"},
                 {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
                 {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
                 {"type": "panel", "id": "stat", "name": "Stat", "version": ""}],
  "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
  "description": "hakmem large-block allocator: BigCache hit rate, evictions, Batch flushes, bytes cached/pending, knobs and tuner decisions, eBPF munmap latency. Metrics from hakmem-tuner --listen (or hakmem-stat --prometheus); see dashboards/README.md.",
  "editable": True,
  "fiscalYearStartMonth": 0,
  "graphTooltip": 1,
  "id": None,
  "links": [],
  "liveNow": False,
  "panels": panels,
  "refresh": "10s",
  "schemaVersion": 39,
  "tags": ["hakmem", "allocator"],
  "templating": {"list": [
    {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {},
     "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": "", "skipUrlSync": False},
    {"name": "exe", "label": "program", "type": "query", "datasource": DS,
     "definition": "label_values(hakmem_info, exe)",
     "query": {"query": "label_values(hakmem_info, exe)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
     "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [], "refresh": 2,
     "regex": "", "skipUrlSync": False, "sort": 1},
    {"name": "comm", "label": "command", "type": "query", "datasource": DS,
     "definition": "label_values(hakmem_info{exe=~\"$exe\"}, comm)",
     "query": {"query": "label_values(hakmem_info{exe=~\"$exe\"}, comm)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
     "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [], "refresh": 2,
     "regex": "", "skipUrlSync": False, "sort": 1},
    {"name": "pid", "label": "pid", "type": "query", "datasource": DS,
     "definition": "label_values(hakmem_info{exe=~\"$exe\",comm=~\"$comm\"}, pid)",
     "query": {"query": "label_values(hakmem_info{exe=~\"$exe\",comm=~\"$comm\"}, pid)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
     "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [], "refresh": 2,
     "regex": "", "skipUrlSync": False, "sort": 3}]},
  "time": {"from": "now-15m", "to": "now"},
  "timepicker": {},
  "timezone": "",
  "title": "hakmem allocator",
  "uid": "hakmem-allocator",
  "version": 1,
  "weekStart": ""
}
json.dump(dash, open("dashboards/hakmem-grafana.json", "w"), indent=2)
print(len(panels), "panels")
