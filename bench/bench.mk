# bench/bench.mk - bench_allocators_hakmem (included by the top-level Makefile).
#   make bench                     the default comparison; writes bench/RESULTS.md,
#                                  bench/ratios.svg, $(O)/bench.json, $(O)/bench.csv
#                                  and the results section of bench/README.md
#   make bench BENCH_ARGS='...'    other allocators/scenarios/iterations (see --help)
#   make bench-instructions        instructions per malloc+free pair (callgrind):
#                                  bench/INSTRUCTIONS.md (INSTR_ARGS='...', see
#                                  bench/instructions.sh --help)
# The benchmark never links hakmem: each worker gets an allocator by LD_PRELOAD.
# It is built without sanitizers (a sanitizer runtime cannot share a process
# with a preloaded allocator): with SAN=... it gets its own copy of the
# segment reader, else it links the one every tool links ($(READER_OBJ)).
BENCH_BIN    := $(O)/bench_allocators_hakmem
# tools/cli.c (the tools' JSON writer) is compiled in with the bench's flags:
# the tools' copy may carry sanitizer instrumentation.
BENCH_SRCS   := bench/bench_allocators_hakmem.c bench/bench_scenarios.c bench/bench_report.c tools/cli.c
BENCH_CFLAGS := $(filter-out -fsanitize=% -O1,$(BASE_CFLAGS)) \
                -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
BENCH_ARGS   ?= --allocator all --scenario all --repeat 5,vm=21,small=15,small-threads=15,partial=11
BENCH_READER := $(if $(SAN),$(O)/obj/bench/shm_read.o,$(READER_OBJ))

# instr_pair: the loop bench/instructions.sh counts under callgrind
# (instructions per malloc+free pair); like the bench, no hakmem linked in.
INSTR_BIN    := $(O)/instr_pair

TOOLS += $(BENCH_BIN) $(INSTR_BIN)

# Included before the top-level `all`: keep whatever default goal was in force.
bench_default_goal := $(.DEFAULT_GOAL)

$(O)/obj/bench/shm_read.o: src/shm_read.c include/hakmem/shm.h
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(BENCH_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BENCH_BIN): $(BENCH_SRCS) bench/bench.h tools/cli.h $(BENCH_READER) include/hakmem.h include/hakmem/shm.h
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BENCH_CFLAGS) -o $@ $(BENCH_SRCS) $(BENCH_READER) -lm -ldl
	$(Q)$(CC) $(BENCH_CFLAGS) -MM -MP -MT $@ $(BENCH_SRCS) > $(basename $@).d

$(INSTR_BIN): bench/instr_pair.c
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BENCH_CFLAGS) $(DEPFLAGS) -o $@ $<

# Instructions per malloc+free pair of hakmem and the peers (callgrind), into
# bench/INSTRUCTIONS.md; INSTR_ARGS for other allocators, sizes, pairs.
INSTR_ARGS ?=
.PHONY: bench-instructions
bench-instructions: deps $(O)/libhakmem.so $(INSTR_BIN)
	$(Q)O=$(O) bash bench/instructions.sh $(INSTR_ARGS) --md bench/INSTRUCTIONS.md

bench: deps $(O)/libhakmem.so $(BENCH_BIN)
	$(Q)$(BENCH_BIN) $(BENCH_ARGS) --md bench/RESULTS.md --svg bench/ratios.svg \
	    --json $(O)/bench.json --csv $(O)/bench.csv; rc=$$?; \
	  if [ -f bench/README.md ] && [ -f bench/RESULTS.md ]; then \
	    awk 'BEGIN { r = "bench/RESULTS.md" } \
	         /<!-- results:begin -->/ { print; while ((getline l < r) > 0) { if (l !~ /^# /) print l }; skip = 1; next } \
	         /<!-- results:end -->/ { skip = 0 } !skip' bench/README.md > bench/README.md.tmp && \
	    mv bench/README.md.tmp bench/README.md; fi; \
	  exit $$rc

.DEFAULT_GOAL := $(bench_default_goal)
