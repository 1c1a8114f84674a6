# Cross-compile for 64-bit Arm Linux with the GNU toolchain (Debian/Ubuntu:
# gcc-aarch64-linux-gnu, plus the arm64 -dev packages of jansson, pcre2 and
# utf8proc through multiarch). The tests run under qemu-user when it is found,
# so `ctest` works on an x86-64 host:
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DMLXN_CUDA=OFF
# Override the triplet with -DMLXN_CROSS_TRIPLE=... for another vendor's toolchain.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT MLXN_CROSS_TRIPLE)
  set(MLXN_CROSS_TRIPLE aarch64-linux-gnu)
endif()
set(CMAKE_C_COMPILER ${MLXN_CROSS_TRIPLE}-gcc)

# pkg-config must see the target's .pc files only, never the host's (which
# would link x86-64 libraries). Multiarch puts them under /usr/lib/<triple>.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${MLXN_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Libraries and headers from the target; programs (pkg-config, bash) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${MLXN_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest runs the test executables through the emulator. No -L: the arm64
# -dev packages pull in multiarch libc6:arm64, whose loader sits where the
# executables look for it (/lib/ld-linux-aarch64.so.1) and finds the arm64
# jansson/pcre2/utf8proc. (-L /usr/<triple>, the cross toolchain's own libc,
# made the tests over ten times slower under qemu-user 7.2.) The scripted
# tests (tests/test_*.sh) run mlxn directly, so they also need qemu-user
# registered with binfmt_misc (Debian: qemu-user-static + binfmt-support).
find_program(MLXN_QEMU NAMES qemu-${CMAKE_SYSTEM_PROCESSOR} qemu-${CMAKE_SYSTEM_PROCESSOR}-static)
if(MLXN_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MLXN_QEMU})
endif()
