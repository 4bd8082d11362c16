#!/usr/bin/env bash
# Install every Debian package hakmem needs, when missing. Idempotent; needs root
# (or sudo) only when something is actually missing.
#   scripts/deps.sh            build + test packages
#   scripts/deps.sh --bench    also the peer allocators for the benchmark
set -euo pipefail

PKGS=(
  build-essential pkg-config make gcc clang llvm
  libclang-rt-14-dev valgrind util-linux
  libcmocka-dev libsqlite3-dev sqlite3
  libbpf-dev bpftool libelf-dev zlib1g-dev systemtap-sdt-dev bpftrace
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
  python3 xz-utils git perl gzip zstd bzip2 file procps man-db groff-base
  chromium chromium-driver prometheus curl
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done" >&2
