#!/usr/bin/env bash
# LLVM's libomp for AArch64 (Debian's libomp5-19:arm64), unpacked into build/aarch64-libomp/
# for tests/test_neon_qemu.py's clang cross build: clang's OpenMP code calls libomp, and the
# GCC cross sysroot has only libgomp. Unpacked, not installed: its files would collide with
# the amd64 package's under /usr/lib/llvm-19.
set -euo pipefail
cd "$(dirname "$0")/.."
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -q >/dev/null
work=$(mktemp -d)
(cd "$work" && apt-get download -q libomp5-19:arm64 >/dev/null 2>&1)
dpkg-deb -x "$work"/libomp5-19_*_arm64.deb "$work/root"
mkdir -p build/aarch64-libomp
cp -L "$work/root/usr/lib/llvm-19/lib/libomp.so.5" build/aarch64-libomp/libomp.so.5
rm -rf "$work"
