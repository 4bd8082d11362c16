# tuner/report_tmpl2c.awk - dashboards/report.html as a C string (report_template),
# compiled into hakmem-report so the tool works without the source tree.
BEGIN {
    print "/* generated from dashboards/report.html by tuner/report_tmpl2c.awk: do not edit */"
    print "static const char report_template[] ="
}
{
    gsub(/\\/, "\\\\")
    gsub(/"/, "\\\"")
    print "    \"" $0 "\\n\""
}
END { print ";" }
