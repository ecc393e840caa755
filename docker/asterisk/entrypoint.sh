#!/bin/bash
# Render asterisk_conf/ with this container's settings (the sandbox's render step), then run Asterisk.
set -euo pipefail

# The AMI secret of user pbx-sla: a Docker/Compose secret, else the environment.
if [ -r /run/secrets/ami_secret ]; then
    PBX_SLA_SANDBOX_AMI_SECRET=$(tr -d '\r\n' < /run/secrets/ami_secret)
    export PBX_SLA_SANDBOX_AMI_SECRET
fi
: "${PBX_SLA_SANDBOX_AMI_SECRET:?no AMI secret: provide the ami_secret secret or PBX_SLA_SANDBOX_AMI_SECRET}"

conf=${PBX_SLA_SANDBOX_CONF_DIR:-/etc/pbxsla}
rm -rf "$conf"
/opt/pbx-sla/scripts/asterisk-sandbox render /opt/pbx-sla/asterisk_conf "$conf"
mkdir -p "${PBX_SLA_SANDBOX_RUN_DIR:-/run/pbxsla}" "${PBX_SLA_SANDBOX_LOG_DIR:-/var/log/pbxsla}/cdr-csv"
# classic AGI scripts next to Asterisk's own (they need their interpreter in the image to run)
cp -a /opt/pbx-sla/agi_scripts/. /usr/share/asterisk/agi-bin/ 2>/dev/null || true

exec /usr/sbin/asterisk -C "$conf/asterisk.conf" -f -n -q "$@"
