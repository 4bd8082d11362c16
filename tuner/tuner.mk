# tuner/tuner.mk - the tuner: policy + SQLite history in the library, and the
# daemon build/hakmem-tuner (included by the top Makefile before its rules).
#   $(O)/obj/tuner_<x>.o        library objects (LIB_CFLAGS), via TUNER_LIB_OBJS (inproc.c, the
#                               tuner's in-process host, is the library's only user of the others)
#   $(O)/obj/tuner-tool/<x>.o   the same sources for the daemon (BASE_CFLAGS)
#   $(O)/gen/tuner_schema.h     tuner/schema.sql as a C table of migrations

# This fragment is read before the top Makefile's "all": keep its explicit
# targets from becoming the default goal.
TUNER_SAVED_GOAL := $(.DEFAULT_GOAL)

# The policy is one file per rule (tuner/policy_internal.h lists them).
POLICY_MODULES  := policy policy_step policy_cap policy_batch policy_thp policy_trim policy_grade
TUNER_MODULES   := $(POLICY_MODULES) db shmlog
TUNER_HEADERS   := tuner/policy.h tuner/policy_internal.h tuner/db.h tuner/shmlog.h include/hakmem/shm.h
TUNER_GEN       := $(O)/gen/tuner_schema.h
TUNER_LIB_OBJS  += $(addprefix $(O)/obj/tuner_,$(addsuffix .o,$(TUNER_MODULES) inproc))
TUNER_TOOL_OBJS := $(addprefix $(O)/obj/tuner-tool/,$(addsuffix .o,$(TUNER_MODULES) main))
TOOLS           += $(O)/hakmem-tuner

# inproc.c embeds tuner_state_t and the core's internals (-MMD finds them too).
$(O)/obj/tuner_inproc.o: $(HEADERS)

$(TUNER_GEN): tuner/schema.sql tuner/schema2c.awk
	@mkdir -p $(dir $@)
	$(call msg,GEN,$@)
	$(Q)awk -f tuner/schema2c.awk $< > $@

$(O)/obj/tuner_%.o: tuner/%.c $(TUNER_HEADERS) $(TUNER_GEN)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LIB_CFLAGS) $(DEPFLAGS) -I$(O)/gen -c $< -o $@

$(O)/obj/tuner-tool/%.o: tuner/%.c $(TUNER_HEADERS) $(TUNER_GEN)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -I$(O)/gen -c $< -o $@

# --listen (tuner/listen.c, tool only): GET /metrics with the Prometheus writer
# shared with hakmem-stat (tools/metrics.c, rule in the top Makefile).
TUNER_LISTEN_OBJS := $(O)/obj/tuner-tool/listen.o $(O)/obj/tools/metrics.o
$(O)/obj/tuner-tool/listen.o $(O)/obj/tuner-tool/main.o: tuner/listen.h tools/metrics.h

# Both tools link the command-line base shared by every tool (tools/cli.c).
$(O)/obj/tuner-tool/main.o $(O)/obj/tuner-tool/report.o $(O)/obj/tuner-tool/report_json.o: tools/cli.h

$(O)/hakmem-tuner: $(TUNER_TOOL_OBJS) $(TUNER_LISTEN_OBJS) $(READER_OBJ) $(CLI_OBJ)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) -o $@ $^ -ldl -lm $(SAN_LDFLAGS)

# hakmem-report: offline reports from the history (tuner/report*.c).  A tool:
# it links libsqlite3 directly (the library never does) and reuses the policy's
# prediction primitive (tuner_hist_covered) and the knob / reason names from
# the tool build of the policy objects.
# The HTML template dashboards/report.html is compiled in.
REPORT_MODULES := report report_db report_model report_text report_json report_html
REPORT_OBJS    := $(addprefix $(O)/obj/tuner-tool/,$(addsuffix .o,$(REPORT_MODULES)))
REPORT_GEN     := $(O)/gen/report_template.h
TOOLS          += $(O)/hakmem-report

$(REPORT_GEN): dashboards/report.html tuner/report_tmpl2c.awk
	@mkdir -p $(dir $@)
	$(call msg,GEN,$@)
	$(Q)awk -f tuner/report_tmpl2c.awk $< > $@

$(REPORT_OBJS): tuner/report.h $(REPORT_GEN)

REPORT_POLICY_OBJS := $(addprefix $(O)/obj/tuner-tool/,$(addsuffix .o,$(POLICY_MODULES)))

$(O)/hakmem-report: $(REPORT_OBJS) $(REPORT_POLICY_OBJS) $(CLI_OBJ)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) -o $@ $^ -lsqlite3 -lm $(SAN_LDFLAGS)

.DEFAULT_GOAL := $(TUNER_SAVED_GOAL)
