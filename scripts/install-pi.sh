#!/usr/bin/env bash
# Install lockerd on a Raspberry Pi (Raspberry Pi OS Bookworm, Node 20 installed) from a checkout:
#   sudo scripts/install-pi.sh [/path/to/config.json]
# Creates the lockerd user, builds into /opt/lockerd, puts the config in /etc/lockerd, installs and
# starts the systemd unit. Re-running it upgrades in place; the ledger in /var/lib/lockerd is kept.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)"; exit 1; }
src="$(cd "$(dirname "$0")/.." && pwd)"
config="${1:-$src/config.example.json}"

node -e 'process.exit(+process.versions.node.split(".")[0] === 20 ? 0 : 1)' || { echo "lockerd needs Node 20"; exit 1; }
id lockerd >/dev/null 2>&1 || useradd --system --home /var/lib/lockerd --shell /usr/sbin/nologin lockerd
for g in gpio i2c dialout plugdev; do getent group "$g" >/dev/null && usermod -aG "$g" lockerd; done
getent group lockerd-admin >/dev/null || groupadd --system lockerd-admin

install -d -m 0755 /opt/lockerd /etc/lockerd
rsync -a --delete --exclude node_modules --exclude data --exclude .git "$src/" /opt/lockerd/
(cd /opt/lockerd && npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev)
[ -f /etc/lockerd/config.json ] || install -m 0640 -g lockerd "$config" /etc/lockerd/config.json
# Refuse a bad config before it reaches systemd (exit 78 names every bad field).
sudo -u lockerd node /opt/lockerd/dist/src/main.js --config /etc/lockerd/config.json --check-config

install -m 0644 /opt/lockerd/systemd/lockerd.service /etc/systemd/system/lockerd.service
systemctl daemon-reload
systemctl enable --now lockerd
systemctl --no-pager status lockerd | head -5
