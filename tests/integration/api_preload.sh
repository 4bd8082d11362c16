#!/usr/bin/env bash
# The replaced malloc family through its public symbols: preloaded, and linked
# statically from libhakmem.a; plus HAKMEM_MODE=off really passes through.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
LD_PRELOAD=$LIB "$PROGS/api_preload"

# Linked: libhakmem.a before libc, no preload.
tmp=$T
cc -O1 -Iinclude -o "$tmp/api_linked" tests/progs/api_preload.c "$B/libhakmem.a" -pthread -ldl -rdynamic
"$tmp/api_linked"

# mode=off: hakmem owns nothing
cat > "$tmp/off.c" <<'C'
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hak_owns");
    void *p = malloc(4 << 20);
    int o = owns && owns(p);
    free(p);
    printf("owned=%d\n", o);
    return o ? 1 : 0;
}
C
cc -O1 -o "$tmp/off" "$tmp/off.c" -ldl
HAKMEM_MODE=off LD_PRELOAD=$LIB "$tmp/off"
# and the same program in fixed mode does use hakmem (the check can fail)
if LD_PRELOAD=$LIB "$tmp/off" >/dev/null; then echo "fixed mode did not serve a 4 MiB block"; exit 1; fi

# A bad knob value warns and keeps working
out=$(HAKMEM_RING_CAP=lots LD_PRELOAD=$LIB "$tmp/off" 2>&1 >/dev/null || true)
grep -q "HAKMEM_RING_CAP=lots is not a valid value" <<<"$out"
echo "api_preload: ok"
