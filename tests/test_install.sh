#!/usr/bin/env bash
# Install the library into a temporary prefix, build examples/hello.c
# against it with pkg-config (static and shared), run both, and check the
# numbers against values worked out independently (python's math module):
#   rms([1,2,3,4]) = sqrt(30/4 + 1e-6) = 2.738613;  x/rms = .365148 .730297 1.095445 1.460593
#   silu(t) = t / (1 + e^-t) = 0.2155 0.4929 0.8209 1.1855
set -euo pipefail
mlxn_bin=$1
build=$2
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pcdir=$(dirname "$(find "$tmp/prefix" -name mlxn.pc | head -n1)")
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"  # keep where the dependencies were found
want="silu(rms_norm([1 2 3 4])) = 0.2155 0.4929 0.8209 1.1855"
# a sanitizer build's library needs the sanitizer runtimes at link time
san=""
grep -q '^MLXN_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && san="-fsanitize=address,undefined"
fails=0 passes=0
check() { if [ "$1" = ok ]; then passes=$((passes + 1)); else fails=$((fails + 1)); echo "FAIL: $2"; fi; }

# the compiler the library was built with (tests/CMakeLists.txt passes it):
# a cross build's library does not link with the host's cc
cc=${MLXN_TEST_CC:-cc}
libdir=$(pkg-config --variable=libdir mlxn)
# static: the archive itself, then what it needs (Libs.private + Requires.private)
"$cc" -std=c11 -Wall -Werror $san "$src/examples/hello.c" $(pkg-config --cflags mlxn) "$libdir/libmlxn.a" \
   $(pkg-config --libs --static mlxn | sed 's/-lmlxn//') -o "$tmp/hello_static" || true
[ -x "$tmp/hello_static" ] && check ok "" || check no "static build against the installed library"
"$cc" -std=c11 -Wall -Werror $san "$src/examples/hello.c" $(pkg-config --cflags --libs mlxn) -o "$tmp/hello_shared"
[ -x "$tmp/hello_shared" ] && check ok "" || check no "shared build"

for exe in hello_static hello_shared; do
  [ -x "$tmp/$exe" ] || continue
  out=$(LD_LIBRARY_PATH="$(dirname "$(find "$tmp/prefix" -name 'libmlxn.so' | head -n1)")" "$tmp/$exe" 2>&1) || true
  if grep -qF "$want" <<<"$out"; then check ok ""; else check no "$exe printed: $out"; fi
  if grep -q "as expected: rms_norm" <<<"$out"; then check ok ""; else check no "$exe: bad call not reported: $out"; fi
done
[ -x "$tmp/prefix/bin/mlxn" ] && check ok "" || check no "mlxn not installed"
echo "test_install: $passes passed, $fails failed"
[ "$fails" = 0 ]
