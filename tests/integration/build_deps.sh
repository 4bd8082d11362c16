#!/usr/bin/env bash
# Header dependency tracking of the build (-MMD -MP, Makefile DEPFLAGS).
# In a private copy of the source tree (headers get touched: the shared tree
# and its build dirs are left alone), `make all test-build` with V=1, then:
#   1. every compiler command that builds a target from C sources wrote
#      <target>.d, and that file names every source of the command (a rule
#      that compiles several sources in one command must not keep only the
#      last one's headers), and make reads it: every prerequisite it names is
#      one of the target's prerequisites in make's database (make -p);
#   2. the truth comes from the compiler, not from the Makefile: each command
#      is re-run with -MM instead of -MMD/-o; for every header of the project,
#      touching it must make `make -n` rebuild every target whose command
#      includes it (the regression: tuner/policy.h did not rebuild the in-process tuner's object);
#   3. nothing is out of date right after the build, nor after the header's
#      time is restored;
#   4. one real rebuild: touching tuner/policy.h (or the first header with
#      dependents) rebuilds all of its dependents, and then make is idle;
#   5. the library's objects depend on their flags too: another EXTRA_CFLAGS
#      rebuilds every one of them (Makefile: $(O)/lib.flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/src"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -f "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -xf - -C "$T/src"
JOBS=$(nproc 2>/dev/null || echo 2)
if ! make -C "$T/src" --no-print-directory O=build V=1 -j"$JOBS" all test-build >"$T/build.log" 2>&1; then
  tail -n 40 "$T/build.log"
  echo "FAIL: the build of the copied tree failed"
  exit 1
fi
python3 - "$T/src" "$T/build.log" <<'EOF'
import os, re, shlex, subprocess, sys, time

tree, log = sys.argv[1], sys.argv[2]
os.chdir(tree)
MAKE = ["make", "--no-print-directory", "O=build", "V=1", "all", "test-build"]
COMPILER = re.compile(r"^(.*/)?((cc|gcc|clang)(-[0-9]+)?|.*-(gcc|clang))$")
fails = []

def bad(msg):
    print("FAIL: " + msg)
    fails.append(msg)

def commands(text):
    """(target, sources, argv) of every compiler command with -o and C sources."""
    out = []
    for line in text.splitlines():
        for part in re.split(r"\s*(?:&&|;)\s*", line.strip()):
            try:
                argv = shlex.split(part)
            except ValueError:
                continue
            if not argv or not COMPILER.match(argv[0]) or "-o" not in argv:
                continue
            srcs = [a for a in argv[1:] if a.endswith(".c")]
            if not srcs:
                continue
            target = argv[argv.index("-o") + 1]
            if target.endswith(".tmp"):
                target = target[:-4]
            out.append((target, srcs, argv))
    return out

def norm(path):
    return os.path.relpath(os.path.realpath(path))

def dep_list(text):
    text = text.replace("\\\n", " ")
    files = []
    for line in text.splitlines():
        if ":" not in line:
            continue
        files += line.split(":", 1)[1].split()
    return {norm(f) for f in files}

def true_headers(argv):
    """The headers the command includes, asked of the compiler itself."""
    args, skip = [argv[0]], False
    for i, a in enumerate(argv[1:], 1):
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-MMD", "-MD", "-MP", "-c", "-shared") or a.endswith((".o", ".a")) or a.startswith(("-l", "-Wl,")):
            continue
        args.append(a)
    r = subprocess.run(args + ["-MM"], capture_output=True, text=True)
    if r.returncode != 0:
        bad("%s -MM failed: %s" % (" ".join(args), r.stderr.strip()[:300]))
        return set()
    return {f for f in dep_list(r.stdout) if f.endswith(".h")}

def would_run(extra=()):
    r = subprocess.run(["make", "-n"] + MAKE[1:] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        bad("make -n failed: " + r.stderr.strip()[:300])
    return {t for t, _, _ in commands(r.stdout)}

built = commands(open(log).read())
if len(built) < 20:
    bad("only %d compile commands in the build log (V=1 not honoured?)" % len(built))

# 1. a .d per target, naming every source of its command
deps = {}
for target, srcs, argv in built:
    d = os.path.splitext(target)[0] + ".d"
    if not os.path.exists(d):
        bad("%s: no dependency file %s (rule without $(DEPFLAGS)?)" % (target, d))
        continue
    listed = dep_list(open(d).read())
    for s in srcs:
        if norm(s) not in listed:
            bad("%s names no %s (of %s)" % (d, s, " ".join(srcs)))
    deps[target] = true_headers(argv)

# make reads the .d files: what each one lists is in make's database
db = {}
r = subprocess.run(["make", "-pq"] + MAKE[1:], capture_output=True, text=True)
for line in r.stdout.splitlines():
    m = re.match(r"^([^#\s][^:=]*):(?!=)\s*(.*)$", line)
    if m and m.group(1) in deps:
        db.setdefault(m.group(1), set()).update(m.group(2).replace("|", " ").split())
for target in deps:
    d = os.path.splitext(target)[0] + ".d"
    listed = set()
    for line in open(d).read().replace("\\\n", " ").splitlines():
        if line.split(":", 1)[0].strip() == target:
            listed.update(line.split(":", 1)[1].split())
    unread = listed - db.get(target, set())
    if unread:
        bad("make does not read %s (%s: prerequisites %s missing)" % (d, target, " ".join(sorted(unread))))

# 3. idle after the build
left = would_run()
if left:
    bad("right after the build make would still run: " + " ".join(sorted(left)))

# 2. every header of the project, touched one at a time (make -n)
headers = sorted({h for hs in deps.values() for h in hs if not h.startswith("build/") and not h.startswith("..")})
tested = 0
for h in headers:
    expect = {t for t, hs in deps.items() if h in hs}
    if not expect:
        continue
    st = os.stat(h)
    os.utime(h, ns=(st.st_atime_ns, time.time_ns()))
    try:
        missing = expect - would_run()
    finally:
        os.utime(h, ns=(st.st_atime_ns, st.st_mtime_ns))
    tested += 1
    if missing:
        bad("touching %s does not rebuild %s" % (h, " ".join(sorted(missing))))
left = would_run()
if left:
    bad("after restoring the headers' times make would run: " + " ".join(sorted(left)))
if tested < 5:
    bad("only %d headers with dependents found: %s" % (tested, " ".join(headers)))

# 4. a real rebuild
pick = "tuner/policy.h" if any("tuner/policy.h" in hs for hs in deps.values()) else \
       next((h for h in headers if any(h in hs for hs in deps.values())), None)
if pick:
    expect = {t for t, hs in deps.items() if pick in hs}
    t0 = time.time_ns()
    os.utime(pick, ns=(t0, t0))
    r = subprocess.run(MAKE, capture_output=True, text=True)
    if r.returncode != 0:
        bad("rebuild after touching %s failed: %s" % (pick, r.stderr.strip()[-500:]))
    stale = [t for t in sorted(expect) if not os.path.exists(t) or os.stat(t).st_mtime_ns < t0]
    if stale:
        bad("touching %s and running make left stale: %s" % (pick, " ".join(stale)))
    left = would_run()
    if left:
        bad("after the rebuild make would still run: " + " ".join(sorted(left)))
    print("rebuild after touching %s: %s" % (pick, " ".join(sorted(expect))))

# 5. flags (last: it rewrites build/lib.flags)
lib_objs = {t for t, _, argv in built if "-fvisibility=hidden" in argv and t.endswith(".o")}
if len(lib_objs) < 10:
    bad("only %d library objects (compiled with -fvisibility=hidden) in the build log" % len(lib_objs))
missing = lib_objs - would_run(["EXTRA_CFLAGS=-DHAK_BUILD_DEPS_TEST"])
if missing:
    bad("a new EXTRA_CFLAGS does not rebuild " + " ".join(sorted(missing)))

print("%d compile commands, %d headers touched" % (len(built), tested))
sys.exit(1 if fails else 0)
EOF
echo "build_deps: ok"
