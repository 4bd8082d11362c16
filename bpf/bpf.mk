# bpf/bpf.mk - the eBPF probe build/hakmem-probe (included by the top-level Makefile).
#
#   $(O)/bpf/vmlinux.h      bpftool btf dump of the running kernel's BTF (or VMLINUX_H=file)
#   $(O)/bpf/hakmem.bpf.o   clang -target bpf, CO-RE, DWARF stripped (BTF kept)
#   $(O)/bpf/hakmem.skel.h  bpftool gen skeleton (the object is embedded)
#   $(O)/hakmem-probe       loader, linked with libbpf, the segment reader and the tools' base (tools/cli.c)
#
# When clang, bpftool, llvm-strip, libbpf or the kernel BTF is missing, the
# rest of the build goes on: hakmem-probe is left out, the reason is written to
# $(O)/bpf/SKIPPED (tests/integration/ebpf.sh then skips), and an explicit
# `make $(O)/hakmem-probe` fails with that reason.

# This fragment is included before the top-level `all` rule: keep its rules
# from becoming the default goal (restored at the end).
BPF_SAVED_GOAL := $(.DEFAULT_GOAL)

BPF_CLANG   ?= clang
LLVM_STRIP  ?= llvm-strip
BPFTOOL     ?= $(or $(shell command -v bpftool 2>/dev/null),$(wildcard /usr/sbin/bpftool /usr/local/sbin/bpftool),bpftool)
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
VMLINUX_H   ?=
BPF_ARCH    := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' \
                                      -e 's/riscv64/riscv/' -e 's/s390x/s390/' -e 's/loongarch64/loongarch/')
BPF_MULTIARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
LIBBPF_CFLAGS := $(shell pkg-config --cflags libbpf 2>/dev/null)
LIBBPF_LIBS   := $(or $(shell pkg-config --libs libbpf 2>/dev/null),-lbpf)

BPF_MISSING := $(strip \
  $(if $(shell command -v $(BPF_CLANG) 2>/dev/null),,clang;) \
  $(if $(shell command -v $(LLVM_STRIP) 2>/dev/null),,llvm-strip (package llvm);) \
  $(if $(shell command -v $(BPFTOOL) 2>/dev/null),,bpftool;) \
  $(if $(shell pkg-config --exists libbpf 2>/dev/null && echo y),,libbpf (package libbpf-dev);) \
  $(if $(VMLINUX_H),,$(if $(wildcard $(VMLINUX_BTF)),,kernel BTF ($(VMLINUX_BTF) absent: needs CONFIG_DEBUG_INFO_BTF=y, or VMLINUX_H=file);)))

BPF_OUT    := $(O)/bpf
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(BPF_ARCH) -I$(BPF_OUT) -Ibpf \
              $(if $(BPF_MULTIARCH),-idirafter /usr/include/$(BPF_MULTIARCH)) -Wall

ifeq ($(BPF_MISSING),)
TOOLS     += $(O)/hakmem-probe
TEST_DEPS += $(O)/hakmem-probe
else
TOOLS     += bpf-skipped
endif

.PHONY: bpf-skipped
bpf-skipped:
	$(Q)mkdir -p $(BPF_OUT)
	$(Q)echo "hakmem-probe not built: missing $(BPF_MISSING)" > $(BPF_OUT)/SKIPPED
	@printf '  %-8s %s\n' "SKIP" "hakmem-probe (missing $(BPF_MISSING) see scripts/deps.sh)"

$(BPF_OUT):
	$(Q)mkdir -p $@

# vmlinux.h: from the running kernel's BTF, or a vendored file (VMLINUX_H=...).
# CO-RE relocates field offsets at load time, so any recent kernel's header works.
$(BPF_OUT)/vmlinux.h: | $(BPF_OUT)
	$(call msg,GEN,$@)
ifneq ($(VMLINUX_H),)
	$(Q)cp $(VMLINUX_H) $@
else
	$(Q)if [ ! -r $(VMLINUX_BTF) ]; then \
	  echo "bpf: cannot generate $@: $(VMLINUX_BTF) is missing (this kernel has no BTF; it needs CONFIG_DEBUG_INFO_BTF=y)." >&2; \
	  echo "bpf: build on a kernel with BTF, or pass VMLINUX_H=/path/to/vmlinux.h generated elsewhere." >&2; \
	  exit 1; fi
	$(Q)command -v $(BPFTOOL) >/dev/null 2>&1 || { echo "bpf: cannot generate $@: bpftool not found (apt-get install bpftool)" >&2; exit 1; }
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@
endif

$(BPF_OUT)/hakmem.bpf.o: bpf/hakmem.bpf.c bpf/hakmem_bpf.h $(BPF_OUT)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(BPF_CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@.tmp
	$(Q)$(LLVM_STRIP) -g $@.tmp && mv $@.tmp $@

$(BPF_OUT)/hakmem.skel.h: $(BPF_OUT)/hakmem.bpf.o
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name hakmem_bpf > $@.tmp && mv $@.tmp $@

ifeq ($(BPF_MISSING),)
$(O)/hakmem-probe: bpf/hakmem-probe.c bpf/hakmem_bpf.h $(BPF_OUT)/hakmem.skel.h $(READER_OBJ) $(CLI_OBJ) include/hakmem/shm.h tools/cli.h
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -I$(BPF_OUT) -Ibpf $(LIBBPF_CFLAGS) -o $@ $< $(READER_OBJ) $(CLI_OBJ) $(LIBBPF_LIBS) -lm $(SAN_LDFLAGS)
	$(Q)rm -f $(BPF_OUT)/SKIPPED
else
$(O)/hakmem-probe:
	@echo "hakmem-probe cannot be built here: missing $(BPF_MISSING)" >&2
	@echo "(scripts/deps.sh installs clang, llvm, libbpf-dev and bpftool; the BTF comes with the kernel)" >&2
	@exit 1
endif

.DEFAULT_GOAL := $(BPF_SAVED_GOAL)
