# hakmem - a drop-in allocator for programs that churn large blocks.
#   make            build/libhakmem.so, build/libhakmem.a, build/hakmem-stat
#   make test       install missing packages, build, run unit + integration tests (T=filter)
#   make demo       install missing packages, build, run the demo workload
#   make install PREFIX=/usr/local   (DESTDIR honoured)
#   V=1 shows every command; O=dir puts the build elsewhere; EXTRA_CFLAGS adds flags.

# `make` alone builds everything: rules above `all` (the flags stamp below,
# the fragments) must not become the default goal.
.DEFAULT_GOAL := all

O        ?= build
PREFIX   ?= /usr/local
CC       ?= cc
SAN      ?=
V        ?= 0

ifeq ($(V),1)
  Q =
  msg =
else
  Q = @
  msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

HAVE_SDT := $(shell $(CC) -E -include sys/sdt.h -x c /dev/null >/dev/null 2>&1 && echo 1)

WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 -O2 -g -pthread $(WARN) -Iinclude -Isrc $(EXTRA_CFLAGS)
ifneq ($(SAN),)
  BASE_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -O1
  SAN_LDFLAGS := -fsanitize=$(SAN)
endif
# Header dependencies: every rule that compiles C adds $(DEPFLAGS), which writes
# the headers its target was built from into <target>.d next to it (-MP: a
# header that goes away does not break the build); the .d files are included
# at the end of this file.  A rule compiling several sources in one command
# writes its .d with -MM instead (one -MF file holds one source's headers).
DEPFLAGS = -MMD -MP -MF $(basename $@).d -MT $@
# Calls inside libhakmem.so to its own exported functions (malloc -> hak_alloc,
# hak_set_ring_cap -> hak_knob_set...) are direct calls, not hops through the
# PLT: -fno-semantic-interposition lets the compiler bind them within a file,
# -Bsymbolic-functions (the .so link below) makes the linker bind them across
# files (override.c -> alloc.c).  A program that defines its own hak_alloc
# still gets its own for its own calls; the library's calls stay the library's.
LIB_CFLAGS := $(BASE_CFLAGS) -fPIC -fvisibility=hidden -fno-semantic-interposition -ftls-model=initial-exec \
              -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
              $(if $(HAVE_SDT),-DHAK_HAVE_SDT)

# The library, one module per responsibility (see src/README.md).
LIB_CORE := sizeclass parse options log os thp registry bigcache tcache batch knobs stats shm init libc alloc free realloc \
            shm_read
CORE_OBJS := $(addprefix $(O)/obj/,$(addsuffix .o,$(LIB_CORE)))
# The segment reader, compiled once (with the library's flags) and linked into
# the library, the tools and the test programs.  Hidden visibility keeps it out
# of libhakmem.so's exported symbols; linked into an executable it changes
# nothing (an executable exports nothing unless linked -rdynamic), and -fPIC
# code links into PIE executables.
READER_OBJ := $(O)/obj/shm_read.o
# The tools' shared command-line base (tools/cli.c, rule below).
CLI_OBJ    := $(O)/obj/tools/cli.o
HEADERS  := include/hakmem.h include/hakmem/shm.h src/hak_internal.h

TOOLS    := $(O)/hakmem-stat
TEST_DEPS :=
TUNER_LIB_OBJS :=

# ---- parts with their own make fragments (each may add to TOOLS and TEST_DEPS) ----
-include bpf/bpf.mk
-include tuner/tuner.mk
-include bench/bench.mk
-include tests/fuzz/fuzz.mk

# Fragments may add objects to the library (e.g. the tuner policy and history).
CORE_OBJS += $(TUNER_LIB_OBJS)
LIB_OBJS := $(CORE_OBJS) $(O)/obj/override.o
LIB_LDFLAGS := -shared -pthread -Wl,-soname,libhakmem.so -Wl,-z,now -Wl,-Bsymbolic-functions

# The library's objects depend on the flags they are built with, not only on
# their headers: $(O)/lib.flags holds the flags and is rewritten (so it is
# newer than every object) only when they change, e.g. by EXTRA_CFLAGS=...
LIB_FLAGS := $(CC) $(LIB_CFLAGS) $(LIB_LDFLAGS) $(SAN_LDFLAGS)
ifeq ($(filter clean help,$(MAKECMDGOALS)),)
ifneq ($(file <$(O)/lib.flags),$(LIB_FLAGS))
$(shell mkdir -p $(O))
$(file >$(O)/lib.flags,$(LIB_FLAGS))
endif
endif
$(LIB_OBJS) $(O)/libhakmem.so: $(O)/lib.flags


.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all lib tools deps test unit integration demo install uninstall clean help bench env-doc

all: lib tools

help:
	@sed -n '2,7p' Makefile | sed 's/^# \{0,1\}//'

lib: $(O)/libhakmem.so $(O)/libhakmem.a $(O)/hakmem.pc

$(O)/obj:
	$(Q)mkdir -p $@

$(O)/obj/%.o: src/%.c $(HEADERS) | $(O)/obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(LIB_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(O)/libhakmem.so: $(LIB_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LIB_LDFLAGS) -o $@ $(filter %.o,$^) -ldl $(SAN_LDFLAGS)

$(O)/libhakmem.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Core without the malloc overrides: for unit tests and sanitizer builds.
$(O)/libhakmem_core.a: $(CORE_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/hakmem.pc: Makefile | $(O)/obj
	$(call msg,GEN,$@)
	$(Q)printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: hakmem\nDescription: drop-in large-block allocator (BigCache + Batch)\nVersion: 0.1.0\nLibs: -L$${libdir} -lhakmem\nLibs.private: -pthread -ldl\nCflags: -I$${includedir}\n' '$(PREFIX)' > $@

tools: $(TOOLS)

# The Prometheus writer (tools/metrics.c) is shared with hakmem-tuner --listen.
$(O)/obj/tools/metrics.o: tools/metrics.c tools/metrics.h include/hakmem/shm.h | $(O)/obj
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -c $< -o $@

# The command-line base of every tool (tools/cli.c: exit-status table, pid /
# interval / count / seconds parsers, version and usage messages, clock, stop
# signals, JSON strings and numbers), compiled once and linked into each
# (CLI_OBJ is set at the top, before the fragments that use it).
$(CLI_OBJ): tools/cli.c tools/cli.h include/hakmem.h include/hakmem/shm.h | $(O)/obj
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -c $< -o $@

# hakmem-stat --set parses sizes with the library's own parser (obj/parse.o).
$(O)/hakmem-stat: tools/hakmem-stat.c $(READER_OBJ) $(CLI_OBJ) $(O)/obj/tools/metrics.o $(O)/obj/parse.o tools/metrics.h tools/cli.h include/hakmem/shm.h
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(READER_OBJ) $(CLI_OBJ) $(O)/obj/tools/metrics.o $(O)/obj/parse.o -lm $(SAN_LDFLAGS)

$(O)/env-doc: tools/env-doc.c $(O)/obj/options.o $(O)/obj/log.o $(O)/obj/parse.o $(HEADERS)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(O)/obj/options.o $(O)/obj/log.o $(O)/obj/parse.o

# Rewrite the HAKMEM_* table in README.md from the option table.
env-doc: $(O)/env-doc
	$(Q)python3 scripts/replace_block.py README.md ENV-TABLE $(O)/env-doc

# ---- setup: every Debian package the project needs, installed when missing ----
deps:
	$(Q)bash scripts/deps.sh

# ---- tests ----
include tests/tests.mk

test: deps
	$(Q)$(MAKE) --no-print-directory all test-build
	$(Q)bash tests/run.sh $(O) $(T)

# ---- demo ----
demo: deps
	$(Q)$(MAKE) --no-print-directory all test-build
	$(Q)bash scripts/demo.sh $(O)

install: lib
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/hakmem $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	$(Q)install -m 0755 $(O)/libhakmem.so $(DESTDIR)$(PREFIX)/lib/
	$(Q)install -m 0644 $(O)/libhakmem.a $(DESTDIR)$(PREFIX)/lib/
	$(Q)install -m 0644 include/hakmem.h $(DESTDIR)$(PREFIX)/include/
	$(Q)install -m 0644 include/hakmem/shm.h $(DESTDIR)$(PREFIX)/include/hakmem/
	$(Q)install -m 0644 $(O)/hakmem.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	$(Q)if [ -f $(O)/hakmem-stat ]; then install -m 0755 $(O)/hakmem-stat $(DESTDIR)$(PREFIX)/bin/; fi

uninstall:
	$(Q)rm -f $(DESTDIR)$(PREFIX)/lib/libhakmem.so $(DESTDIR)$(PREFIX)/lib/libhakmem.a \
	  $(DESTDIR)$(PREFIX)/include/hakmem.h $(DESTDIR)$(PREFIX)/include/hakmem/shm.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/hakmem.pc $(DESTDIR)$(PREFIX)/bin/hakmem-stat

clean:
	$(call msg,CLEAN,$(O))
	$(Q)rm -rf $(O)

# Header dependencies written by $(DEPFLAGS) (see there).  The fuzz build's own
# objects ($(O)/fuzz/obj, a sub-make with O=$(O)/fuzz) are that make's business.
DEPFILES := $(filter-out $(O)/fuzz/obj/%,$(wildcard $(O)/*.d $(O)/*/*.d $(O)/*/*/*.d))
$(DEPFILES): ;
-include $(DEPFILES)
