# tests/fuzz/fuzz.mk - fuzzing, and the reliability-test programs that link the
# allocator core directly (included by the top-level Makefile).
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="api shm"]
#       builds every target tests/fuzz/fuzz_<target>.c with clang
#       -fsanitize=fuzzer,address,undefined into $(O)/fuzz/, replays its corpus
#       tests/fuzz/corpus/<target>/ (see tests/fuzz/README.md), then fuzzes it
#       for FUZZ_SECONDS.  New inputs go to $(O)/fuzz/work/<target>/, crashes to
#       $(O)/fuzz/crashes/<target>/ (copy each into the corpus as regress-<what>
#       once fixed: every crash becomes a regression test).  Fails on any crash.
#   make fuzz-build      only build the targets
#   make fuzz-regress    only replay the corpora (no fuzzing)
#
# The library objects for fuzzing are compiled by the top Makefile's own rules
# (a sub-make with O=$(O)/fuzz, CC=clang, SAN=fuzzer-no-link,...), so every
# module the core gains (tuner objects included) is instrumented and linked.

fuzz_default_goal := $(.DEFAULT_GOAL)

FUZZ_O       := $(O)/fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     ?= address,undefined
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(patsubst %,$(FUZZ_O)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_LIBS    := $(FUZZ_O)/libhakmem_core.a
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -fno-omit-frame-pointer -pthread -Wall -Wextra -Wno-unused-parameter \
                -Iinclude -Isrc -fno-sanitize-recover=all $(EXTRA_CFLAGS)

.PHONY: fuzz fuzz-build fuzz-lib fuzz-regress

fuzz-lib:
	$(Q)$(MAKE) --no-print-directory O=$(FUZZ_O) CC=$(FUZZ_CC) SAN=fuzzer-no-link,$(FUZZ_SAN) \
	  EXTRA_CFLAGS="$(EXTRA_CFLAGS) -fno-sanitize-recover=all" $(FUZZ_LIBS)

fuzz-build: fuzz-lib
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)

$(FUZZ_O)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBS) $(HEADERS)
	$(call msg,FUZZLD,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(FUZZ_LIBS) -ldl

fuzz: fuzz-build
	$(Q)bash tests/fuzz/run.sh $(FUZZ_O) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	$(Q)bash tests/fuzz/run.sh $(FUZZ_O) 0 $(FUZZ_TARGETS)

# ---- programs that call the core directly (native API, no preload) ----
# Static pattern rules: explicit, so tests.mk's preload-program rule for
# tests/progs/*.c does not apply to these.  Built by `make test-build` and
# with SAN=... (tests/integration/sanitizers.sh).
NATIVE_PROGS := mt_native
$(addprefix $(O)/tests/progs/,$(NATIVE_PROGS)): $(O)/tests/progs/%: tests/progs/%.c $(O)/libhakmem_core.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(O)/libhakmem_core.a -ldl $(SAN_LDFLAGS)

.DEFAULT_GOAL := $(fuzz_default_goal)
