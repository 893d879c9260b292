#!/usr/bin/env bash
# Install, upgrade, roll back or remove lockerd on a Raspberry Pi (Raspberry Pi OS Bookworm or
# Trixie, Pi 4 or Pi 5), from a checkout of this repository. Idempotent: running it again with the
# same checkout changes nothing; with a newer one it upgrades (backup, switch, restart, selftest,
# automatic rollback). `--help` says everything; `--dry-run` prints every step and changes nothing.
#
# Layout:  /opt/lockerd/releases/<version>/   one build per version, side by side
#          /opt/lockerd/current -> releases/<version>, previous -> the one before
#          /opt/lockerd/node -> the node binary chosen (--node, PATH, or the distribution's)
#          /usr/local/bin/lockerd, lockerctl   wrappers: /opt/lockerd/node /opt/lockerd/current/...
#          /etc/lockerd/config.json            0640 root:lockerd (never overwritten)
#          /var/lib/lockerd                    the ledger and key, 0700 lockerd (never touched)
#          /var/backups/lockerd                the backup taken before each upgrade
#          /etc/systemd/system/lockerd.service + lockerd.service.d/10-devices.conf
#          /etc/udev/rules.d/99-lockerd-*.rules
set -euo pipefail
umask 022

usage() {
  cat <<'EOF'
Usage: sudo scripts/install-pi.sh [OPTIONS] [CONFIG]

Installs lockerd from this checkout, or upgrades an installed one to it.

  CONFIG, --config FILE   the bank's config, copied to /etc/lockerd/config.json (0640 root:lockerd)
                          on the first install; an existing /etc/lockerd/config.json is never
                          overwritten. Must be a real bank (hardware.profile "real"), never
                          config.example.json (the simulator and its demo people).
  --profile a|b|c         start the config from a ready-made profile in hardware/profiles/:
                          a = 16 GPIO relays, b = two MCP23017, c = two Kerong RS485 boards.
                          Edit device.site / device.id (and the hardware) afterwards.
  --node PATH             the node binary to run lockerd with (major 20, 22 or 24). Default: `node`
                          on PATH if new enough, else the distribution's nodejs if new enough
                          (Trixie: 20.x), else the script stops and says how to get one (Bookworm's
                          apt has Node 18, too old; this script never downloads Node itself).
  --dry-run, -n           print every step and command, change nothing (no root needed)
  --no-start              install, but do not start or restart the service
  --no-health-check       skip `lockerctl selftest` after the (re)start; on a bench without the
                          boards attached. An upgrade is then not rolled back on a failing selftest.
  --skip-apt              do not install system packages (they must be there already)
  --devices               only rewrite the DeviceAllow drop-in from /etc/lockerd/config.json (after
                          changing the hardware in the config), reload systemd, restart lockerd
  --rollback              switch back to the previous release and restart it
  --uninstall             stop and remove the service, the releases, the wrappers and the udev
                          rules; keep /etc/lockerd, /var/lib/lockerd, /var/backups/lockerd and the
                          lockerd user and groups
  -h, --help              this text

Upgrade: the running bank's ledger is backed up (`lockerctl backup`, online; if that fails, lockerd
is stopped and the data directory copied) to /var/backups/lockerd, the new release is checked
against the config (`lockerd --check-config`), `current` is switched, lockerd restarted and
`lockerctl selftest` run. If the new release does not start or the selftest fails, `current` goes
back to the previous release, which is restarted (and, if it refuses the ledger, the backup is
restored with `lockerd restore`).

Exit codes: 0 done, 1 failed (what and why printed), 64 bad arguments.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments

ARGS="$*"
DRY=0
MODE=install
PROFILE=""
CONFIG=""
NODE=""
START=1
HEALTH=1
APT=1
KEEP_RELEASES=3
NODE_MAJORS="20 22 24"

die() {
  printf 'install-pi: %s\n' "$1" >&2
  exit "${2:-1}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -n | --dry-run) DRY=1 ;;
    --profile) [ $# -ge 2 ] || die "--profile needs a, b or c" 64; PROFILE="$2"; shift ;;
    --profile=*) PROFILE="${1#*=}" ;;
    --config) [ $# -ge 2 ] || die "--config needs a file" 64; CONFIG="$2"; shift ;;
    --config=*) CONFIG="${1#*=}" ;;
    --node) [ $# -ge 2 ] || die "--node needs the path of a node binary" 64; NODE="$2"; shift ;;
    --node=*) NODE="${1#*=}" ;;
    --no-start) START=0 ;;
    --no-health-check) HEALTH=0 ;;
    --skip-apt) APT=0 ;;
    --devices) MODE=devices ;;
    --rollback) MODE=rollback ;;
    --uninstall) MODE=uninstall ;;
    --) shift; [ $# -le 1 ] || die "one CONFIG at most" 64; [ $# -eq 0 ] || CONFIG="$1"; break ;;
    -*) die "unknown option $1 (see --help)" 64 ;;
    *) [ -z "$CONFIG" ] || die "one CONFIG at most (got $CONFIG and $1)" 64; CONFIG="$1" ;;
  esac
  shift
done
[ -z "$PROFILE" ] || [ -z "$CONFIG" ] || die "--profile or a CONFIG, not both" 64
case "$PROFILE" in "" | a | b | c) ;; *) die "--profile must be a, b or c" 64 ;; esac

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every path this script writes is under $R. Empty on a Pi; the tests set LOCKERD_ROOT to a
# temporary directory. The paths written INTO files (unit, wrappers) never carry it.
R="${LOCKERD_ROOT:-}"
OPT=/opt/lockerd
ETC=/etc/lockerd
CONF=$ETC/config.json
DATA=/var/lib/lockerd
BACKUPS=/var/backups/lockerd
UNIT_DIR=/etc/systemd/system
DROPIN=$UNIT_DIR/lockerd.service.d/10-devices.conf
UDEV_DIR=/etc/udev/rules.d
BIN=/usr/local/bin

# ---------------------------------------------------------------------------------------------
# Printing and doing

STEP=0
REBOOT=()
NOTES=()
step() {
  STEP=$((STEP + 1))
  printf '\n[%d] %s\n' "$STEP" "$*"
}
say() { printf '    %s\n' "$*"; }
note() {
  NOTES+=("$*")
  say "note: $*"
}
# Runs a command that changes the system; in a dry run only prints it.
run() {
  printf '    $ %s\n' "$(printf '%q ' "$@")"
  [ "$DRY" = 1 ] || "$@"
}
# Writes stdin to a file (atomically) with a mode; in a dry run prints what would be written.
write_file() {
  local dest="$1" mode="$2" content
  content="$(cat)"
  if [ "$DRY" = 1 ]; then
    printf '    write %s (mode %s):\n' "$dest" "$mode"
    printf '%s\n' "$content" | sed 's/^/      | /'
    return
  fi
  printf '    write %s (mode %s)\n' "$dest" "$mode"
  printf '%s\n' "$content" >"$dest.tmp.$$"
  chmod "$mode" "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
}
# A precondition that fails: stops a real run; a dry run says so and goes on with the next step.
fail() {
  if [ "$DRY" = 1 ]; then
    say "WOULD STOP HERE: $1"
    return 0
  fi
  die "$1"
}
# Points a symlink somewhere new in one rename (never a moment without it).
relink() {
  run ln -sfn "$1" "$2.new"
  run mv -Tf "$2.new" "$2"
}

profile_file() {
  local f=("$SRC/hardware/profiles/$PROFILE"-*.json)
  printf '%s' "${f[0]}"
}
node_version() { "$1" -e 'process.stdout.write(process.versions.node)' 2>/dev/null || true; }
node_major() { local v; v="$(node_version "$1")"; printf '%s' "${v%%.*}"; }
major_ok() { case " $NODE_MAJORS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# 24.19.0 to 24.21.x: better-sqlite3 12 compiled against their headers aborts the process at exit
# (`Assertion failed: (env) != nullptr`); 24.22.0 fixed it. package.json's engines say the same.
version_ok() {
  local v="$1" major minor
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  major_ok "$major" || return 1
  if [ "$major" = 24 ] && [ "${minor:-0}" -ge 19 ] 2>/dev/null && [ "${minor:-0}" -le 21 ]; then return 1; fi
  return 0
}
NODE_REFUSED="24.19 to 24.21 (better-sqlite3 aborts at exit on them; 24.22 fixed it)"
is_active() { command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet lockerd 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Steps

check_system() {
  step "Check the system"
  local id="?" codename="?" model="not a Raspberry Pi?"
  if [ -r /etc/os-release ]; then
    id="$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')"
    codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')"
  fi
  [ -r /proc/device-tree/model ] && model="$(tr -d '\0' </proc/device-tree/model)"
  PI_MODEL="$model"
  say "OS: $id $codename, $(uname -m); board: $model"
  case "$codename" in
    bookworm | trixie) ;;
    *) note "tested on Raspberry Pi OS / Debian bookworm and trixie, this is $codename" ;;
  esac
  if [ "$DRY" = 0 ] && [ -z "$R" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root: sudo $0 $ARGS  (or --dry-run to see what it would do)"
  fi
  [ "$DRY" = 0 ] || say "dry run: nothing below is done, only printed"
}

APT_PACKAGES=(
  build-essential python3 pkg-config  # node-gyp builds better-sqlite3, i2c-bus, epoll, node-hid
  libudev-dev libusb-1.0-0-dev        # headers for node-hid (hidraw) and serialport
  libusb-1.0-0 udev                   # at run time: node-hid, the udev rules
  gpiod i2c-tools                     # gpioset/gpiomon: GPIO on /dev/gpiochip* where sysfs GPIO is gone (Trixie); gpioinfo, i2cdetect by hand
  sqlite3 rsync ca-certificates       # the ledger by hand; copying the checkout; npm over TLS
)
# python3 is also lockerd's notify helper (src/systemd/notify.ts).

install_packages() {
  step "System packages"
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "all there: ${APT_PACKAGES[*]}"
  elif [ "$APT" = 0 ]; then
    fail "missing ${missing[*]} and --skip-apt given: apt-get install ${missing[*]}"
  else
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

choose_node() {
  step "Node.js (major ${NODE_MAJORS// /, })"
  local m cand
  if [ -n "$NODE" ]; then
    if [ ! -x "$NODE" ]; then
      fail "--node $NODE: not an executable file"
      NODE_BIN=/usr/bin NPM=/usr/bin/npm
      return
    fi
    m="$(node_version "$NODE")"
    version_ok "$m" || fail "--node $NODE is Node ${m:-?}; lockerd runs on Node ${NODE_MAJORS// /, }, not $NODE_REFUSED"
    say "--node: $NODE (Node $m)"
  elif command -v node >/dev/null 2>&1 && version_ok "$(node_version node)"; then
    NODE="$(readlink -f "$(command -v node)")"
    say "on PATH: $NODE (Node $(node_version "$NODE"))"
  else
    cand="$(apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9]*\)\..*/\1/p' | head -1)"
    if [ -n "$cand" ] && major_ok "$cand"; then
      say "the distribution's nodejs is Node $cand (Trixie): installing it, and npm"
      run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
      NODE=/usr/bin/node
    else
      fail "no Node ${NODE_MAJORS// /, } here, and apt offers nodejs ${cand:-none} (Bookworm ships 18: too old).
    Install one, then run this again. Either
      - NodeSource's apt repository (updates come with apt):
          curl -fsSL https://deb.nodesource.com/setup_22.x -o nodesource_setup.sh
          sudo bash nodesource_setup.sh && sudo apt-get install -y nodejs
      - or the official build, unpacked where you like:
          https://nodejs.org/dist/latest-v22.x/ (node-v22.*-linux-arm64.tar.xz on 64-bit Pi OS)
          sudo tar -C /opt -xJf node-v22.*-linux-arm64.tar.xz
        and pass --node /opt/node-v22.<x>-linux-arm64/bin/node"
      NODE=/usr/bin/node NODE_BIN=/usr/bin NPM=/usr/bin/npm
      return
    fi
  fi
  NODE_BIN="$(dirname "$NODE")"
  if [ -x "$NODE_BIN/npm" ]; then
    NPM="$NODE_BIN/npm"
  elif command -v npm >/dev/null 2>&1; then
    NPM="$(command -v npm)"
  else
    say "no npm beside $NODE: the distribution's npm"
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
    NPM=/usr/bin/npm
  fi
  say "npm: $NPM"
}

users_and_groups() {
  step "User lockerd, group lockerd-admin"
  local g
  getent group lockerd-admin >/dev/null || run groupadd --system lockerd-admin
  if ! getent passwd lockerd >/dev/null; then
    run useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin lockerd
  fi
  # gpio and i2c come with Raspberry Pi OS; elsewhere they are made so that the unit's
  # SupplementaryGroups= resolves (systemd refuses to start a unit naming a missing group).
  for g in gpio i2c dialout; do
    getent group "$g" >/dev/null || run groupadd --system "$g"
  done
  local have
  have=" $(id -nG lockerd 2>/dev/null || true) "
  for g in gpio i2c dialout lockerd-admin; do
    case "$have" in
      *" $g "*) say "lockerd is in $g" ;;
      *) run usermod -aG "$g" lockerd ;;
    esac
  done
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    case " $(id -nG "$SUDO_USER" 2>/dev/null || true) " in
      *" lockerd-admin "*) say "$SUDO_USER is in lockerd-admin (lockerctl)" ;;
      *)
        run usermod -aG lockerd-admin "$SUDO_USER"
        note "$SUDO_USER was added to lockerd-admin: log in again before using lockerctl"
        ;;
    esac
  fi
}

release_version() {
  local v sha dirty
  v="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$SRC/package.json" | head -1)"
  [ -n "$v" ] || die "no version in $SRC/package.json"
  if sha="$(git -C "$SRC" rev-parse --short=10 HEAD 2>/dev/null)"; then
    v="$v-g$sha"
    # A tree with changes gets a name from them (edits and new files): the same changes, the
    # same release, so running the installer twice builds once.
    if [ -n "$(git -C "$SRC" status --porcelain 2>/dev/null)" ]; then
      dirty="$({
        git -C "$SRC" diff HEAD
        git -C "$SRC" ls-files -z --others --exclude-standard | (cd "$SRC" && xargs -0 -r sha256sum)
      } 2>/dev/null | sha256sum | cut -c1-8)"
      v="$v-dirty.$dirty"
    fi
  fi
  printf '%s' "$v"
}

build_release() {
  VERSION="$(release_version)"
  DEST="$OPT/releases/$VERSION"
  step "Release $VERSION"
  if [ -f "$R$DEST/.complete" ]; then
    say "already built: $DEST"
    return
  fi
  local stage="$R$OPT/releases/.$VERSION.partial"
  run install -d -m 0755 "$R$OPT" "$R$OPT/releases"
  run rm -rf "$stage"
  # Owned by root, readable by lockerd whatever the checkout's modes were.
  run rsync -a --chown=root:root --chmod=D0755,Fa+r,Fgo-w --exclude /node_modules --exclude /dist \
    --exclude /data --exclude /.git --exclude /.ci "$SRC/" "$stage/"
  # npm ci builds the native addons against $NODE (its directory first on PATH, for node-gyp).
  local path="$NODE_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  run env -C "$stage" PATH="$path" "$NPM" ci --no-audit --no-fund
  run env -C "$stage" PATH="$path" "$NPM" run build
  run env -C "$stage" PATH="$path" "$NPM" prune --omit=dev --no-audit --no-fund
  run touch "$stage/.complete"
  run mv -T "$stage" "$R$DEST"
}

install_config() {
  step "Config $CONF"
  run install -d -m 0750 "$R$ETC"
  run chown root:lockerd "$R$ETC"
  local src=""
  if [ -n "$PROFILE" ]; then
    src="$(profile_file)"
    [ -f "$src" ] || die "no profile $PROFILE in $SRC/hardware/profiles"
  elif [ -n "$CONFIG" ]; then
    src="$CONFIG"
  fi
  if [ -f "$R$CONF" ]; then
    say "kept $CONF (an installed config is never overwritten)"
    if [ -n "$src" ] && ! cmp -s "$src" "$R$CONF"; then
      note "$src differs from $CONF and was not installed: compare them and edit $CONF by hand"
    fi
    return
  fi
  if [ -z "$src" ]; then
    fail "no config: give --profile a|b|c (hardware/profiles) or the bank's config file"
    return
  fi
  [ -f "$src" ] || { fail "config $src: no such file"; return; }
  case "$(basename "$src")" in
    config.example.json) fail "config.example.json is the simulator's (demo people and PINs): use --profile a|b|c or the bank's own config"; return ;;
  esac
  if ! grep -Eq '"profile"[[:space:]]*:[[:space:]]*"real"' "$src"; then
    fail "$src is not a real bank (hardware.profile is not \"real\"): use --profile a|b|c or the bank's own config"
    return
  fi
  run install -m 0640 "$src" "$R$CONF"
  run chown root:lockerd "$R$CONF"
  [ -z "$PROFILE" ] || note "$CONF is profile $PROFILE as shipped: set device.site / device.id and check the hardware section"
}

data_dirs() {
  step "Data $DATA, backups $BACKUPS"
  run install -d -m 0700 "$R$DATA"
  run chown lockerd:lockerd "$R$DATA"
  run install -d -m 0750 "$R$BACKUPS"
  run chown root:lockerd "$R$BACKUPS"
}

# The interfaces and devices the config uses: "i2c uart gpio usb-serial hidraw" (src/systemd/devices.ts).
config_needs() {
  local cli="$R$DEST/dist/src/systemd/devices.js" conf="$R$CONF"
  [ -f "$conf" ] || conf="${CONFIG:-}"
  if [ -n "$PROFILE" ] && [ ! -f "$R$CONF" ]; then conf="$(profile_file)"; fi
  [ -f "$cli" ] || cli="$SRC/dist/src/systemd/devices.js" # a dry run before the build: the checkout's
  if [ -f "$cli" ] && [ -n "$conf" ] && [ -f "$conf" ] && [ -x "$NODE" ]; then
    "$NODE" "$cli" --needs "$conf"
  else
    printf '?'
  fi
}

interfaces() {
  step "Interfaces the config uses (I2C, UART, GPIO)"
  local needs
  needs=" $(config_needs) "
  say "the config uses:${needs}"
  if [ "$needs" = " ? " ]; then
    say "(not known before the release is built and a config is in place)"
    return
  fi
  local rc=""
  command -v raspi-config >/dev/null 2>&1 && rc=raspi-config
  case "$needs" in *" i2c "*)
    if [ -n "$rc" ] && [ "$(raspi-config nonint get_i2c 2>/dev/null || echo 1)" != 0 ]; then
      run raspi-config nonint do_i2c 0
      REBOOT+=("I2C enabled")
    elif [ -z "$rc" ]; then
      say "no raspi-config: enable I2C yourself (dtparam=i2c_arm=on in /boot/firmware/config.txt, i2c-dev in /etc/modules)"
    else
      say "I2C is on"
    fi
    ;;
  esac
  case "$needs" in *" uart "*)
    if [ -n "$rc" ] && ! grep -q do_serial_hw "$(command -v raspi-config)" 2>/dev/null; then
      # An older raspi-config: one switch, 2 = hardware on, login console off.
      run raspi-config nonint do_serial 2
      REBOOT+=("serial port set up")
    elif [ -n "$rc" ]; then
      if [ "$(raspi-config nonint get_serial_hw 2>/dev/null || echo 1)" != 0 ]; then
        run raspi-config nonint do_serial_hw 0
        REBOOT+=("serial port enabled")
      else
        say "the serial port is on"
      fi
      if [ "$(raspi-config nonint get_serial_cons 2>/dev/null || echo 0)" = 0 ]; then
        # The login console on the UART would read the keypad's keys and write into the reader.
        run raspi-config nonint do_serial_cons 1
        REBOOT+=("serial console disabled")
      else
        say "no login console on the serial port"
      fi
    else
      say "no raspi-config: enable_uart=1 in /boot/firmware/config.txt, and remove console=serial0,115200 from cmdline.txt"
    fi
    case "$PI_MODEL" in *"Pi 4"* | *"Pi 3"* | *"Pi Zero"*)
      if grep -q '/dev/ttyAMA0' "$R$CONF" 2>/dev/null && ! grep -Eqs '^[[:space:]]*dtoverlay=(disable-bt|miniuart-bt)' /boot/firmware/config.txt /boot/config.txt; then
        note "on a $PI_MODEL /dev/ttyAMA0 is the Bluetooth UART, not pins 8/10: use \"/dev/serial0\" in $CONF, or add dtoverlay=disable-bt to /boot/firmware/config.txt (hardware/readers.md)"
      fi
      ;;
    esac
    ;;
  esac
  case "$needs" in *" gpio "*)
    if [ -e /sys/class/gpio/export ]; then
      say "sysfs GPIO is there (/sys/class/gpio): lockerd uses it (GPIO backend \"auto\")"
    elif command -v gpioset >/dev/null 2>&1; then
      say "no /sys/class/gpio: lockerd drives GPIO on /dev/gpiochip* through the gpiod tools ($(gpioset --version 2>/dev/null | head -n 1))"
    else
      note "no /sys/class/gpio and no gpiod tools: GPIO relays, door switches and the buzzer need the package gpiod (apt install gpiod); hardware/gpio-i2c.md"
    fi
    ;;
  esac
  case "$needs" in *" usb-serial "*)
    note "the RS485 adapter's name /dev/rs485-locks comes from $UDEV_DIR/99-lockerd-rs485.rules: set your adapter's serial number there (hardware/readers.md)"
    ;;
  esac
}

udev_rules() {
  step "udev rules"
  local f dest changed=0
  run install -d -m 0755 "$R$UDEV_DIR"
  for f in "$SRC"/hardware/udev/*.rules; do
    dest="$R$UDEV_DIR/$(basename "$f")"
    if [ ! -f "$dest" ]; then
      run install -m 0644 "$f" "$dest"
      changed=1
    elif cmp -s "$f" "$dest"; then
      say "$(basename "$f"): as shipped"
    else
      say "$(basename "$f"): yours is edited, kept; this version's is beside it as $(basename "$f").dist"
      run install -m 0644 "$f" "$dest.dist"
    fi
  done
  if [ "$changed" = 1 ] && command -v udevadm >/dev/null 2>&1; then
    run udevadm control --reload
    # usb-serial: the FTDI latency timer (99-lockerd-rs485.rules) is set on the adapter's
    # usb-serial device, not on its tty; without it the timer stays 16 ms until a re-plug.
    run udevadm trigger --subsystem-match=hidraw --subsystem-match=input --subsystem-match=tty --subsystem-match=usb-serial
  fi
}

commands() {
  step "Commands: $BIN/lockerd, $BIN/lockerctl, $OPT/node"
  relink "$NODE" "$R$OPT/node"
  run install -d -m 0755 "$R$BIN"
  write_file "$R$BIN/lockerctl" 0755 <<EOF
#!/bin/sh
# Installed by lockerd's scripts/install-pi.sh: lockerctl of the current release.
exec $OPT/node $OPT/current/dist/lockerd/lockerctl.js "\$@"
EOF
  write_file "$R$BIN/lockerd" 0755 <<EOF
#!/bin/sh
# Installed by lockerd's scripts/install-pi.sh: lockerd of the current release (the service runs
# the same file; use this for --check-config, restore, --init).
exec $OPT/node $OPT/current/dist/lockerd/lockerd.js "\$@"
EOF
}

check_config() {
  step "Check $CONF against release $VERSION"
  local args=(--config "$R$CONF" --check-config)
  # With the ledger: also the layout plan (refused when a changed compartment holds a parcel).
  [ ! -f "$R$DATA/ledger.db" ] || args+=(--data "$R$DATA")
  [ "$DRY" = 1 ] || [ -f "$R$CONF" ] || die "no $CONF to check"
  if ! run runuser -u lockerd -- "$R$OPT/node" "$R$DEST/dist/lockerd/lockerd.js" "${args[@]}"; then
    die "the config does not pass release $VERSION's check (above): nothing was switched; fix $CONF and run this again"
  fi
}

unit_files() {
  step "systemd unit and its device drop-in"
  run install -d -m 0755 "$R$UNIT_DIR" "$R$(dirname "$DROPIN")"
  run install -m 0644 "$R$DEST/systemd/lockerd.service" "$R$UNIT_DIR/lockerd.service"
  write_dropin
}

write_dropin() {
  local cli="$R$DEST/dist/src/systemd/devices.js" conf="$R$CONF"
  if [ "$DRY" = 1 ] && { [ ! -f "$cli" ] || [ ! -f "$conf" ]; }; then
    say "write $DROPIN: DeviceAllow= for the nodes $CONF uses (node $DEST/dist/src/systemd/devices.js $CONF)"
  else
    local content
    content="$("$NODE" "$cli" "$conf")" || die "cannot derive the devices from $CONF (above)"
    printf '%s\n' "$content" | write_file "$R$DROPIN" 0644
  fi
  command -v systemctl >/dev/null 2>&1 && run systemctl daemon-reload
  return 0
}

# lockerctl of the release `current` points to (before a switch: the running one's).
LOCKERCTL=("$R$OPT/node" "$R$OPT/current/dist/lockerd/lockerctl.js")

# Is the service up and is the bank healthy? (lockerctl selftest: devices, ledger, chain, disk)
healthy() {
  [ "$START" = 1 ] || return 0
  for _ in 1 2 3; do
    is_active && break
    sleep 2
  done
  if ! is_active; then
    say "lockerd is not running: journalctl -u lockerd -n 50"
    return 1
  fi
  sleep 3 # a crash right after READY
  is_active || { say "lockerd stopped right after it started: journalctl -u lockerd -n 50"; return 1; }
  [ "$HEALTH" = 1 ] || { say "health check skipped (--no-health-check)"; return 0; }
  say "lockerctl selftest:"
  "${LOCKERCTL[@]}" selftest | sed 's/^/      /'
  return "${PIPESTATUS[0]}"
}

# The ledger, before the new release may migrate it.
backup_ledger() {
  [ -f "$R$DATA/ledger.db" ] || { say "no ledger yet: nothing to back up"; BACKUP=""; return; }
  local stamp
  stamp="$(date +%Y%m%dT%H%M%S)"
  BACKUP="$BACKUPS/pre-$VERSION-$stamp.backup"
  if is_active && run "${LOCKERCTL[@]}" backup "$R$BACKUP"; then
    run chown lockerd:lockerd "$R$BACKUP" # lockerd restore reads it as lockerd
    say "backup: $BACKUP"
    return
  fi
  say "no online backup (lockerd not running, or its lockerctl has no backup): copying the data directory with lockerd stopped"
  ! is_active || run systemctl stop lockerd
  BACKUP="$BACKUPS/pre-$VERSION-$stamp.d"
  run cp -a "$R$DATA" "$R$BACKUP"
  say "backup: $BACKUP (ledger.db, device.key, bank.json as they were)"
}

switch_to() {
  local target="$1"
  if [ -L "$R$OPT/current" ] && [ "$(readlink "$R$OPT/current")" != "$target" ]; then
    relink "$(readlink "$R$OPT/current")" "$R$OPT/previous"
  fi
  relink "$target" "$R$OPT/current"
}

restart() {
  [ "$START" = 1 ] || { say "not restarted (--no-start)"; return 0; }
  run systemctl enable lockerd
  run systemctl restart lockerd
}

rollback_to() {
  local prev="$1"
  step "ROLLBACK to $prev"
  relink "$prev" "$R$OPT/current"
  run systemctl restart lockerd || true
  if healthy; then
    say "rolled back: $prev runs again"
    return 0
  fi
  if [ -n "${BACKUP:-}" ] && [ "${BACKUP%.backup}" != "$BACKUP" ]; then
    say "$prev does not run on the ledger as the new release left it: restoring $BACKUP"
    run systemctl stop lockerd
    run runuser -u lockerd -- "$R$OPT/node" "$R$OPT/current/dist/lockerd/lockerd.js" restore "$R$BACKUP" --data "$R$DATA"
    run systemctl start lockerd
    healthy && { say "rolled back and restored: $prev runs on the pre-upgrade ledger"; return 0; }
  elif [ -n "${BACKUP:-}" ]; then
    say "$prev does not run on the ledger as the new release left it: putting the copy $BACKUP back"
    run systemctl stop lockerd
    run mv -T "$R$DATA" "$R$DATA.failed-$VERSION"
    run cp -a "$R$BACKUP" "$R$DATA"
    run systemctl start lockerd
    healthy && { say "rolled back and restored: $prev runs on the pre-upgrade data"; return 0; }
  fi
  say "ROLLBACK FAILED: lockerd does not run. journalctl -u lockerd -n 100; backup: ${BACKUP:-none}"
  return 1
}

go_live() {
  local prev=""
  [ -L "$R$OPT/current" ] && prev="$(readlink "$R$OPT/current")"
  local target="releases/$VERSION"
  if [ "$prev" = "$target" ]; then
    step "Service (release $VERSION is already current)"
    if [ "$START" = 1 ] && ! is_active; then
      run systemctl enable --now lockerd
    else
      say "lockerd: $(is_active && echo running || echo 'not started (--no-start)')"
    fi
    [ "$DRY" = 1 ] || healthy || die "lockerd is not healthy (above)"
    return
  fi
  if [ -z "$prev" ]; then
    step "First start of release $VERSION"
    switch_to "$target"
    restart
    [ "$DRY" = 0 ] || say "then: lockerctl selftest (a failure is reported; there is nothing to roll back to)"
    [ "$DRY" = 1 ] || healthy || die "release $VERSION is installed but not healthy (above): fix it, then \`lockerctl selftest\`"
    return
  fi
  step "Upgrade $prev -> $target"
  backup_ledger
  switch_to "$target"
  restart
  if [ "$DRY" = 1 ]; then
    say "then: lockerctl selftest; on failure current -> $prev, restart (and restore the backup if $prev refuses the ledger)"
    return
  fi
  if healthy; then
    say "upgraded to $VERSION (previous: $prev; \`sudo $0 --rollback\` goes back)"
  else
    rollback_to "$prev" || true
    die "the upgrade to $VERSION failed and was rolled back (above)"
  fi
}

prune_releases() {
  step "Old releases (keeping $KEEP_RELEASES, current and previous)"
  local keep=() r n=0 cur prev
  cur="$(basename "$(readlink "$R$OPT/current" 2>/dev/null || echo none)")"
  prev="$(basename "$(readlink "$R$OPT/previous" 2>/dev/null || echo none)")"
  [ -d "$R$OPT/releases" ] || { say "none"; return; }
  # Newest first, by build time.
  while IFS= read -r r; do
    n=$((n + 1))
    if [ "$r" = "$cur" ] || [ "$r" = "$prev" ] || [ "$n" -le "$KEEP_RELEASES" ]; then
      keep+=("$r")
    else
      run rm -rf "$R$OPT/releases/$r"
    fi
  done < <(ls -1t "$R$OPT/releases" 2>/dev/null)
  say "kept: ${keep[*]:-none}"
}

summary() {
  step "Done"
  local n
  [ "$DRY" = 0 ] || say "(dry run: nothing was changed)"
  for n in "${NOTES[@]}"; do say "- $n"; done
  if [ ${#REBOOT[@]} -gt 0 ]; then
    say "REBOOT NEEDED ($(IFS=,; printf '%s' "${REBOOT[*]}")): sudo reboot; then lockerctl selftest"
  fi
  say "status: systemctl status lockerd; lockerctl status; lockerctl selftest"
}

# ---------------------------------------------------------------------------------------------
# Modes

do_install() {
  check_system
  install_packages
  choose_node
  users_and_groups
  build_release
  install_config
  data_dirs
  interfaces
  udev_rules
  commands
  check_config
  unit_files
  go_live
  prune_releases
  summary
}

do_devices() {
  check_system
  step "Device drop-in from $CONF"
  [ -L "$R$OPT/current" ] || die "lockerd is not installed ($OPT/current missing)"
  NODE="$R$OPT/node"
  DEST="$OPT/current"
  write_dropin
  if is_active; then run systemctl restart lockerd; fi
  summary
}

do_rollback() {
  check_system
  step "Roll back"
  [ -L "$R$OPT/previous" ] || die "no previous release to go back to ($OPT/previous missing)"
  local prev cur
  prev="$(readlink "$R$OPT/previous")"
  cur="$(readlink "$R$OPT/current")"
  say "current $cur -> $prev"
  relink "$prev" "$R$OPT/current"
  relink "$cur" "$R$OPT/previous"
  if [ "$START" = 1 ]; then run systemctl restart lockerd; fi
  [ "$DRY" = 1 ] || healthy || die "the previous release is not healthy either (above)"
  summary
}

do_uninstall() {
  check_system
  step "Remove the service"
  if command -v systemctl >/dev/null 2>&1; then
    run systemctl disable --now lockerd || true
  fi
  run rm -f "$R$UNIT_DIR/lockerd.service"
  run rm -rf "$R$(dirname "$DROPIN")"
  command -v systemctl >/dev/null 2>&1 && run systemctl daemon-reload
  step "Remove the releases, the wrappers and the udev rules"
  run rm -rf "$R$OPT"
  run rm -f "$R$BIN/lockerctl" "$R$BIN/lockerd"
  local f
  for f in "$SRC"/hardware/udev/*.rules; do
    run rm -f "$R$UDEV_DIR/$(basename "$f")" "$R$UDEV_DIR/$(basename "$f").dist"
  done
  command -v udevadm >/dev/null 2>&1 && run udevadm control --reload
  step "Kept"
  say "$ETC (the config), $DATA (the ledger and device key), $BACKUPS, user lockerd, groups lockerd-admin"
  say "to remove them too, after a last \`lockerctl backup\`: rm -rf $ETC $DATA $BACKUPS; userdel lockerd; groupdel lockerd-admin"
  summary
}

case "$MODE" in
  install) do_install ;;
  devices) do_devices ;;
  rollback) do_rollback ;;
  uninstall) do_uninstall ;;
esac
