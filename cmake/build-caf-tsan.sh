#!/usr/bin/env bash
# Builds a ThreadSanitizer-instrumented libcaf_core.so from the Debian source
# package of the installed libcaf-dev (CAF 0.17.6), so TSan runs of taskhost can
# see CAF's own atomics (lock-free mailbox, ref counts) instead of reporting
# false races against the uninstrumented /usr/lib/x86_64-linux-gnu/libcaf_core.so.
#
# Usage: cmake/build-caf-tsan.sh [WORKDIR]   (default: <repo>/build-tsan/caf-src)
#   WORKDIR/dl/                  downloaded .dsc + tarballs (apt-get source)
#   WORKDIR/actor-framework-*/   unpacked source
#   WORKDIR/build/               CMake + Ninja build tree
#   WORKDIR/install/lib/         libcaf_core.so* (the result; printed at the end)
# Only the library is built; headers stay /usr/include/caf, and the script checks
# that the source's libcaf_core headers are identical to them.
# Env: CAF_TSAN_WITH_IO=1 also builds libcaf_io (not needed by taskhost).
# Idempotent: re-running reuses the download, the source and the build tree.
# Needs root only if deb-src must be enabled or dpkg-dev installed.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
work="${1:-$repo_root/build-tsan/caf-src}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
with_io="${CAF_TSAN_WITH_IO:-0}"

log() { echo "[build-caf-tsan] $*"; }
die() { echo "[build-caf-tsan] ERROR: $*" >&2; exit 1; }

# The work folder must not be git-tracked territory (build-*/ is ignored).
case "$work/" in
  "$repo_root"/*)
    if git -C "$repo_root" rev-parse --git-dir >/dev/null 2>&1 &&
       ! git -C "$repo_root" check-ignore -q "$work"; then
      die "$work is inside the git tree but not git-ignored; use e.g. $repo_root/build-tsan/caf-src"
    fi ;;
esac

# -- what we must match -------------------------------------------------------
sys_inc=/usr/include/caf
[ -f "$sys_inc/config.hpp" ] || die "$sys_inc/config.hpp missing (install libcaf-dev first)"
sys_ver="$(sed -n 's/^#define CAF_VERSION \([0-9][0-9]*\).*/\1/p' "$sys_inc/config.hpp")"
[ "$sys_ver" = 1706 ] || log "warning: /usr/include/caf has CAF_VERSION $sys_ver (expected 1706)"
src_pkg="$(dpkg-query -W -f='${source:Package}' libcaf-dev 2>/dev/null || true)"
src_ver="$(dpkg-query -W -f='${source:Version}' libcaf-dev 2>/dev/null || true)"
src_pkg="${src_pkg:-actor-framework}"
log "system CAF_VERSION $sys_ver; source package $src_pkg ${src_ver:-(any version)}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else die "need root for: $*"; fi
}

# -- 1. fetch the Debian source package ---------------------------------------
dl="$work/dl"
mkdir -p "$dl"
upstream_ver="${src_ver%-*}"              # 0.17.6-2.1 -> 0.17.6
upstream_ver="${upstream_ver#*:}"         # drop an epoch
dsc=""
if [ -n "$src_ver" ]; then
  [ -f "$dl/${src_pkg}_${src_ver#*:}.dsc" ] && dsc="$dl/${src_pkg}_${src_ver#*:}.dsc"
else
  dsc="$(ls "$dl"/"${src_pkg}"_*.dsc 2>/dev/null | head -n1 || true)"
fi
orig_present() { [ -n "$dsc" ] && ls "$dl"/*.orig.tar.* >/dev/null 2>&1; }

if ! orig_present; then
  have_src() { [ "$(apt-cache showsrc "$src_pkg" 2>/dev/null | grep -c "^Version: ${src_ver:-}" || true)" -gt 0 ]; }
  if ! have_src; then
    srcfile=/etc/apt/sources.list.d/debian-src.sources
    if [ ! -f "$srcfile" ]; then
      [ -f /etc/apt/sources.list.d/debian.sources ] ||
        die "no /etc/apt/sources.list.d/debian.sources to derive deb-src entries from"
      log "enabling deb-src in $srcfile"
      as_root sh -c "sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > '$srcfile'"
    fi
    as_root apt-get update -qq
    have_src || die "apt-cache showsrc $src_pkg has no version ${src_ver:-}: $(apt-cache showsrc "$src_pkg" 2>&1 | grep -E '^(Version|E:|W:)' | tr '\n' ' ')"
  fi
  spec="$src_pkg${src_ver:+=$src_ver}"
  log "apt-get source --download-only $spec"
  # apt exits non-zero if any one file fails (the mirror here lacks the small
  # .debian.tar.xz); what matters is the .dsc and the upstream tarball, checked below.
  ( cd "$dl" && apt-get source --download-only -o APT::Sandbox::User=root "$spec" ) ||
    log "warning: apt-get source reported a failure (see above); continuing if the .dsc and orig tarball arrived"
  if [ -n "$src_ver" ]; then
    [ -f "$dl/${src_pkg}_${src_ver#*:}.dsc" ] && dsc="$dl/${src_pkg}_${src_ver#*:}.dsc"
  else
    dsc="$(ls "$dl"/"${src_pkg}"_*.dsc 2>/dev/null | head -n1 || true)"
  fi
  orig_present || die "apt-get source did not deliver the .dsc and the .orig tarball into $dl"
fi
log "using $dsc"

# verify every file the .dsc lists that is present, against its SHA-256
have_debian_tar=1
while read -r sum _size name; do
  [ -n "$name" ] || continue
  if [ -f "$dl/$name" ]; then
    echo "$sum  $dl/$name" | sha256sum -c --quiet - || die "checksum mismatch for $name"
  else
    case "$name" in
      *.orig.tar.*) die "$name missing" ;;
      *) log "warning: $name not available (Debian patches will not be applied by dpkg-source)"
         have_debian_tar=0 ;;
    esac
  fi
done < <(awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f&&NF==3{print}' "$dsc")

# -- unpack ---------------------------------------------------------------------
srcdir="$work/${src_pkg}-${upstream_ver}"
if [ ! -f "$srcdir/libcaf_core/caf/config.hpp" ]; then
  rm -rf "$srcdir"
  if [ "$have_debian_tar" = 1 ]; then
    command -v dpkg-source >/dev/null || as_root apt-get install -y -qq --no-install-recommends dpkg-dev
    ( cd "$work" && dpkg-source --no-check -x "$dsc" "$srcdir" )
  else
    orig="$(ls "$dl"/*.orig.tar.* | head -n1)"
    mkdir -p "$srcdir"
    tar -xf "$orig" -C "$srcdir" --strip-components=1
  fi
fi
# Debian's only header change (io/network/receive_buffer.hpp lacks <limits>,
# needed by g++ >= 11); harmless if the Debian patch was already applied.
rb="$srcdir/libcaf_io/caf/io/network/receive_buffer.hpp"
if [ -f "$rb" ] && ! grep -q '#include <limits>' "$rb"; then
  sed -i 's|^#include <cstring>$|#include <cstring>\n#include <limits>|' "$rb"
fi

# -- version and header check ---------------------------------------------------
src_caf_ver="$(sed -n 's/^#define CAF_VERSION \([0-9][0-9]*\).*/\1/p' "$srcdir/libcaf_core/caf/config.hpp")"
[ "$src_caf_ver" = "$sys_ver" ] ||
  die "source has CAF_VERSION $src_caf_ver but /usr/include/caf has $sys_ver"
hdr_libs=(libcaf_core)
[ "$with_io" = 1 ] && hdr_libs+=(libcaf_io)
mismatch=0
for hl in "${hdr_libs[@]}"; do
  while IFS= read -r -d '' h; do
    rel="${h#"$srcdir/$hl/"}"
    if ! cmp -s "$h" "/usr/include/$rel"; then
      log "header differs from system: $rel"; mismatch=1
    fi
  done < <(find "$srcdir/$hl/caf" -name '*.hpp' -print0)
done
[ "$mismatch" = 0 ] || die "${hdr_libs[*]} headers in the source differ from /usr/include/caf"
log "source CAF_VERSION $src_caf_ver; all ${hdr_libs[*]} headers identical to /usr/include/caf"

# -- 2. configure and build -----------------------------------------------------
command -v cmake >/dev/null || die "cmake missing"
command -v ninja >/dev/null || die "ninja missing (apt-get install ninja-build)"
cxx="$(command -v g++-12 || command -v g++)"
tsan_flags="-fsanitize=thread -g -O1 -fno-omit-frame-pointer"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ "$with_io" = 1 ]; then no_io=no; else no_io=yes; fi
bld="$work/build"
log "configuring in $bld (compiler $cxx, io: $([ "$no_io" = no ] && echo yes || echo no))"
# -std=c++11 and build type None (no extra -O/-DNDEBUG) mirror the Debian build,
# where CAF's CMakeLists prepends -std=c++11 to dpkg's flags.
cmake -S "$srcdir" -B "$bld" -G Ninja \
  -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_FLAGS="-std=c++11 $tsan_flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_INSTALL_PREFIX="$work/install" \
  -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_TOOLS=yes \
  -DCAF_NO_OPENSSL=yes -DCAF_NO_OPENCL=yes -DCAF_NO_PYTHON=yes \
  -DCAF_NO_IO="$no_io" -DCAF_NO_SUMMARY=yes -DCAF_LOG_LEVEL=QUIET >"$work/configure.log" 2>&1 ||
  { tail -n 40 "$work/configure.log" >&2; die "cmake configure failed (full log: $work/configure.log)"; }

gen="$bld/libcaf_core/caf/detail/build_config.hpp"
cmp -s "$gen" "$sys_inc/detail/build_config.hpp" ||
  die "generated build_config.hpp differs from $sys_inc/detail/build_config.hpp"

targets=(libcaf_core_shared)
[ "$no_io" = no ] && targets+=(libcaf_io_shared)
jobs="$(nproc 2>/dev/null || echo 2)"
log "building ${targets[*]} with $jobs jobs"
start=$(date +%s)
cmake --build "$bld" --parallel "$jobs" --target "${targets[@]}"
log "build took $(( $(date +%s) - start )) s"

# -- install (copy) the libraries -----------------------------------------------
inst="$work/install/lib"
mkdir -p "$inst"
libs=(caf_core)
if [ "$no_io" = no ]; then libs+=(caf_io); else rm -f "$inst"/libcaf_io.so*; fi
for l in "${libs[@]}"; do
  ls "$bld"/lib/lib"$l".so* >/dev/null 2>&1 || die "lib$l.so not produced in $bld/lib"
  rm -f "$inst"/lib"$l".so*
  cp -a "$bld"/lib/lib"$l".so* "$inst"/
done

# -- sanity check and result ----------------------------------------------------
out="$inst/libcaf_core.so"
# (grep -c reads all input: grep -q would SIGPIPE nm/ldd and trip pipefail)
ntsan="$(nm -D "$out" | grep -c '__tsan_' || true)"
[ "${ntsan:-0}" -gt 0 ] || die "$out has no __tsan_ references"
[ "$(ldd "$out" | grep -c 'libtsan' || true)" -gt 0 ] || die "$out does not link libtsan"
log "ok: $(readlink -f "$out") is TSan-instrumented ($ntsan __tsan_ symbols, needs libtsan); use it with LD_LIBRARY_PATH=$inst"
echo "$out"
