# tuner/schema2c.awk - turn tuner/schema.sql into a C table of migrations:
#   static const struct tuner_migration tuner_migrations[] = {{N, "description", "sql"}, ...};
# A line "-- @migration N description" starts migration N; other comment-only
# lines are dropped; everything else is kept verbatim (escaped).
function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return s }
BEGIN {
    n = 0
    print "/* generated from tuner/schema.sql by tuner/schema2c.awk: do not edit */"
    print "static const struct tuner_migration tuner_migrations[] = {"
}
/^-- @migration [0-9]+/ {
    if (n) print "    },"
    n++
    ver = $3
    desc = $0; sub(/^-- @migration [0-9]+ */, "", desc)
    printf "    {%d, \"%s\",\n", ver, esc(desc)
    next
}
/^[ \t]*--/ { next }
/^[ \t]*$/ { next }
n { line = $0; sub(/[ \t]+--.*$/, "", line); printf "     \"%s\\n\"\n", esc(line) }
END { if (n) print "    },"; print "};"; printf "#define TUNER_MIGRATIONS_N %d\n", n }
