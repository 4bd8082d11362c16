#!/usr/bin/env bash
# The README's HAKMEM_* table is the one generated from src/options.c, and every
# HAKMEM_* variable the sources read is in it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
python3 scripts/replace_block.py --check README.md ENV-TABLE "$B/env-doc"
for v in $(grep -ho '"HAKMEM_[A-Z_]*"' src/options.c | tr -d '"' | sort -u); do
  grep -q "\`$v\`" README.md || { echo "README does not document $v"; exit 1; }
done
echo "docs: ok"
