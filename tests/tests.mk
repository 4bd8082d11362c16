# tests/tests.mk - test programs (included by the top-level Makefile).
# Unit tests: tests/unit/test_<module>.c, cmocka, linked with the core archive
# (no malloc override; it holds the segment reader and the tuner too).  Programs: tests/progs/<name>.c, plain workloads run by
# the integration scripts tests/integration/*.sh.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))
PROG_SRCS := $(wildcard tests/progs/*.c)
PROG_BINS := $(patsubst tests/progs/%.c,$(O)/tests/progs/%,$(PROG_SRCS))

.PHONY: test-build
test-build: $(UNIT_BINS) $(PROG_BINS) $(TEST_DEPS) $(O)/env-doc

# (the core archive contains the segment reader and the tuner too)
$(O)/tests/%: tests/unit/%.c $(O)/libhakmem_core.a $(HEADERS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(O)/libhakmem_core.a -lcmocka -ldl $(SAN_LDFLAGS)

# Programs that link the core itself (its internals, no preload): explicit
# targets, so the preload-program rule below does not apply to them.
CORE_PROGS := env_probe
$(addprefix $(O)/tests/progs/,$(CORE_PROGS)): $(O)/tests/progs/%: tests/progs/%.c $(O)/libhakmem_core.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(O)/libhakmem_core.a -ldl $(SAN_LDFLAGS)

$(O)/tests/progs/%: tests/progs/%.c $(READER_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(READER_OBJ) -ldl $(SAN_LDFLAGS)
