#!/usr/bin/env python3
"""replace_block.py FILE NAME CMD... : replace the text between
<!-- NAME:BEGIN --> and <!-- NAME:END --> in FILE with CMD's output.
With --check, exit 1 (and print a diff) when FILE is not up to date."""
import difflib, subprocess, sys

args = sys.argv[1:]
check = False
if args and args[0] == "--check":
    check, args = True, args[1:]
if len(args) < 3:
    sys.exit("usage: replace_block.py [--check] FILE NAME CMD...")
path, name, cmd = args[0], args[1], args[2:]
begin, end = f"<!-- {name}:BEGIN -->", f"<!-- {name}:END -->"
text = open(path).read()
if begin not in text or end not in text:
    sys.exit(f"{path}: markers {begin} / {end} not found")
out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
new = f"{head}{begin}\n{out}{end}{tail}"
if check:
    if new != text:
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), path, "generated"))
        sys.exit(1)
    sys.exit(0)
if new != text:
    open(path, "w").write(new)
