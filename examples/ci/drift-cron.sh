#!/usr/bin/env bash
# Nightly drift check for one prov workspace from cron, e.g. in /etc/cron.d/prov-drift:
#   17 3 * * *  deploy  /opt/prov/examples/ci/drift-cron.sh /srv/infra/prod >> /var/log/prov-drift.log 2>&1
# Exit status: 0 no drift, 2 drift (alert), 1 the check itself failed (alert), never 127: cron
# runs jobs with PATH=/usr/bin:/bin, so prov is looked for in $PROV, then on PATH, then where
# install-prov.sh, `cargo install` and packages put it.
# An ignore file is optional: WORKSPACE/drift-ignore.json (or the second argument) when it exists.
# ALERT_WEBHOOK (optional): the JSON report is POSTed there on drift or failure.
set -u
PATH="$PATH:/usr/local/bin${HOME:+:$HOME/.local/bin:$HOME/.cargo/bin}"
export PATH
ws=${1:?usage: drift-cron.sh WORKSPACE_DIR [IGNORE_FILE]}
ignore=${2:-$ws/drift-ignore.json}
stamp() { date -u +%FT%TZ; }
prov=${PROV:-$(command -v prov || true)}
if [[ -z $prov || ! -x $prov ]]; then
  echo "$(stamp) drift check FAILED in $ws: prov not found (set PROV=/path/to/prov; PATH was $PATH)"
  exit 1
fi
report=$(mktemp) || exit 1
trap 'rm -f "$report"' EXIT
args=(drift "$ws" --json --lock-timeout 5m)
[[ -f $ignore ]] && args+=(--ignore "$ignore")
"$prov" "${args[@]}" > "$report"
code=$?
case $code in
  0) echo "$(stamp) no drift in $ws" ;;
  2) echo "$(stamp) DRIFT in $ws"; cat "$report" ;;
  *) echo "$(stamp) drift check FAILED in $ws (exit $code)"; cat "$report"; code=1 ;;
esac
if [[ $code -ne 0 && -n ${ALERT_WEBHOOK:-} ]]; then
  curl -fsS -X POST -H 'content-type: application/json' --data @"$report" "$ALERT_WEBHOOK" \
    || echo "$(stamp) could not post the alert to ALERT_WEBHOOK"
fi
exit "$code"
