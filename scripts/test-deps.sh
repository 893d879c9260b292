#!/usr/bin/env bash
# The system packages the test suite uses, in one list: `npm test` runs this first (pretest), CI
# through .ci/run, a person by hand. Every test that needs one of them fails, naming this script,
# when it is missing (test/helpers/tools.ts): none is skipped silently.
#   scripts/test-deps.sh           install what is missing (as root); without root, say the one
#                                  command to run and exit 1
#   scripts/test-deps.sh --check   exit 1 naming what is missing; install nothing
#   scripts/test-deps.sh --list    the packages, one a line
set -euo pipefail

PACKAGES=(
  mosquitto mosquitto-clients # the real broker of the MQTT tests, mosquitto_pub/_sub/_passwd
  nats-server rabbitmq-server # the fleet brokers of test/brokers/ (clusters on loopback; not started as services)
  socat                       # pseudo-terminal pairs standing in for serial ports
  libusb-1.0-0                # node-hid loads it
  udev                        # serialport's port listing runs udevadm
  openssl                     # the TLS test's certificates
  python3                     # lockerd's notify helper, and the tests' notify socket
  systemd                     # systemd-analyze: the unit's exposure
  shellcheck                  # the installer and this script stay clean
  util-linux                  # setpriv: root-run tests drop capabilities to see EACCES
  git rsync                   # the installer names a release by its commit, copies the checkout
  gpiod                       # the real gpiod tools: the GPIO emulator's failure paths are checked against them
  gcc                         # cc: the slow-disk test's fsync shim (LD_PRELOAD), built at test time
)
# Where there is no dpkg (not Debian): the commands that stand for them.
COMMANDS=(mosquitto_pub mosquitto_sub nats-server rabbitmq-server socat openssl python3 systemd-analyze shellcheck setpriv git rsync gpioset cc)

mode="${1:-install}"
case "$mode" in
  --list) printf '%s\n' "${PACKAGES[@]}"; exit 0 ;;
  --check | install) ;;
  -h | --help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "test-deps: unknown argument $mode (--check, --list)" >&2; exit 64 ;;
esac

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
else
  for c in "${COMMANDS[@]}"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test-deps: the tests need ${missing[*]} (Debian packages: ${PACKAGES[*]}); install them with your package manager" >&2
    exit 1
  fi
  exit 0
fi

[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$mode" = --check ]; then
  echo "test-deps: missing ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: the tests need packages that are not installed: ${missing[*]}" >&2
  echo "  run: sudo $(cd "$(dirname "$0")" && pwd)/test-deps.sh" >&2
  exit 1
fi
echo "test-deps: installing ${missing[*]}"
# The brokers' packages would start their own services (a RabbitMQ idling through the whole run):
# the tests start their own on loopback. policy-rc.d 101 = "do not start", for this install only.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
