#!/usr/bin/env bash
# Nightly drift check for one prov workspace, e.g. from cron:
#   0 3 * * *  /opt/prov/examples/ci/drift-cron.sh /srv/infra/prod >> /var/log/prov-drift.log 2>&1
# Exit code of `prov drift`: 0 no drift, 2 drift (alert), 1 error (alert: the check itself failed).
set -u
ws=${1:?usage: drift-cron.sh WORKSPACE_DIR [IGNORE_FILE]}
ignore=${2:-$ws/drift-ignore.json}
report=$(mktemp)
args=(drift "$ws" --json --lock-timeout 5m)
[[ -f $ignore ]] && args+=(--ignore "$ignore")
prov "${args[@]}" > "$report"
code=$?
case $code in
  0) echo "$(date -u +%FT%TZ) no drift in $ws" ;;
  2) echo "$(date -u +%FT%TZ) DRIFT in $ws"
     # Hand the JSON (schema: docs/drift-json.md) to your alerting, e.g.:
     # curl -fsS -X POST -H 'content-type: application/json' --data @"$report" "$ALERT_WEBHOOK"
     cat "$report" ;;
  *) echo "$(date -u +%FT%TZ) drift check FAILED in $ws (exit $code)"; cat "$report" ;;
esac
rm -f "$report"
exit "$code"
