#!/usr/bin/env bash
# npm run test:asan: the end-to-end suite (both engines, interop) against an
# ASan+UBSan build of the addon. Node is not instrumented, so libasan is
# preloaded; leak detection is off because Node keeps memory until exit by
# design. Any sanitizer report aborts the tws process and fails its test.
set -euo pipefail
cd "$(dirname "$0")/.."
# A missing tool skips the pass with one line in the form the tap tests use
# (test/helpers/tools.ts), which .ci/run, having installed everything, fails on.
skip() { echo "skip: needs $1 (Debian package $2): the sanitizer pass did not run"; exit 0; }
command -v cmake >/dev/null 2>&1 || skip cmake cmake
command -v make >/dev/null 2>&1 || skip make make
command -v gcc >/dev/null 2>&1 || skip gcc gcc
libasan=$(gcc -print-file-name=libasan.so 2>/dev/null || true)
[ -e "$libasan" ] || skip libasan "libgcc-$(gcc -dumpversion 2>/dev/null | cut -d. -f1)-dev"
out=build-asan
node node_modules/cmake-js/bin/cmake-js rebuild --out "$out" --CDTWS_SANITIZE=ON >/dev/null
export TWS_NATIVE_ADDON="$PWD/$out/Release/tws_native.node"
# Refuse to report a clean run of an uninstrumented build.
if ! nm -D "$TWS_NATIVE_ADDON" | grep __asan_report >/dev/null; then  # no -q: with pipefail, an early exit would SIGPIPE nm
  echo "test:asan: $TWS_NATIVE_ADDON is not instrumented" >&2
  exit 1
fi
export LD_PRELOAD="$libasan"
# A small quarantine: freed memory held back for use-after-free checks would
# otherwise (256 MB by default) swamp the RSS bounds the tests also check.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:quarantine_size_mb=16"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TWS_TEST_ENGINES=native
# Test files given on the command line replace the default: all of test/e2e.
args=("$@")
has_files=0
for a in "$@"; do [[ $a == *.test.ts ]] && has_files=1; done
[ "$has_files" = 1 ] || args+=(test/e2e)
npx tap "${args[@]}"
