#!/usr/bin/env bash
# The @NAME@ provider for prov (exec protocol 1, docs/exec-protocol.md), in bash with jq.
# One JSON request on stdin, one JSON response on stdout. Servers live in
# WORKSPACE/.prov/@NAME@/servers.json, under an flock: prov runs calls in parallel.
set -euo pipefail

NAME="@NAME@"
VERSION="0.1.0"
REQ=$(cat)
OP=$(jq -r .operation <<<"$REQ")
ARGS=$(jq -c '.arguments // {}' <<<"$REQ")
ZONES=$(jq -c --arg d "$NAME-a" '.settings.zones // [$d]' <<<"$REQ")
DIR="$(jq -r .workspace.dir <<<"$REQ")/.prov/$NAME"
FILE="$DIR/servers.json"
mkdir -p "$DIR"
exec 9>>"$FILE.lock"
flock 9
[ -s "$FILE" ] || echo '{"next": 1, "servers": {}}' > "$FILE"

ok() { jq -c '{result: .}'; }
fail() { jq -cn --arg c "$1" --arg m "$2" '{error: {code: $c, message: $m}}'; exit 0; }
# Applies the jq filter $1 (with $args) to the servers file and saves it.
save() { jq --argjson args "$ARGS" "$1" "$FILE" > "$FILE.tmp" && mv "$FILE.tmp" "$FILE"; }
need() {
    jq -e --arg id "$(jq -r .id <<<"$ARGS")" '.servers[$id]' "$FILE" >/dev/null ||
        fail not_found "server $(jq -r .id <<<"$ARGS") does not exist"
}
check() {
    local spec=$1
    jq -e '.plan == "small" or .plan == "large"' <<<"$spec" >/dev/null ||
        fail invalid "unknown plan $(jq -c .plan <<<"$spec") (small, large)"
    jq -e --argjson z "$ZONES" '.zone as $x | $z | index($x) != null' <<<"$spec" >/dev/null ||
        fail invalid "unknown zone $(jq -c .zone <<<"$spec") ($(jq -r 'join(", ")' <<<"$ZONES"))"
}

case "$OP" in
info)
    jq -cn --arg n "$NAME" --arg v "$VERSION" --argjson z "$ZONES" '{result: {name: $n, version: $v,
        interface: "exec", supported_operations: ["info", "validate-config", "test-connection",
        "create-server", "delete-server", "list-servers", "get-server-info", "start-server",
        "stop-server", "reboot-server", "update-server", "get-pricing", "get-plans", "get-zones",
        "get-ssh-access", "configure-firewall"], required_auth: [],
        supported_os: ["debian-12", "ubuntu-22.04"], regions: $z}}' ;;
validate-config)
    jq -c '{result: {errors: (if (.settings.zones // []) | type == "array" then [] else ["zones must be a list of zone names"] end), warnings: []}}' <<<"$ARGS" ;;
test-connection) echo '{"result": {"success": true, "message": "the servers file is writable"}}' ;;
create-server)
    check "$(jq -c .spec <<<"$ARGS")"
    save '.next as $n | .next += 1 | .servers[($n | tostring | "'"$NAME"'-" + .)] = ($args.spec + {
        id: ($n | tostring | "'"$NAME"'-" + .), status: "running",
        public_ip: "192.0.2.\($n % 250 + 1)", private_ip: "10.0.0.\($n % 250 + 1)",
        tags: (($args.spec.tags // {}) + {"prov:workspace": $args.owner.workspace,
                                        "prov:address": $args.owner.address}),
        firewall_rules: ($args.spec.firewall_rules // []), extra: {}}
        | del(.ssh_keys, .storage, .network))'
    jq -c '.servers[(.next - 1 | tostring | "'"$NAME"'-" + .)]' "$FILE" | ok ;;
update-server)
    need
    check "$(jq -c .update.after <<<"$ARGS")"
    save '.servers[$args.id] |= (.plan = $args.update.after.plan
        | .firewall_rules = ($args.update.after.firewall_rules // [])
        | .tags = ((.tags | with_entries(select(.key | startswith("prov:")))) + ($args.update.after.tags // {})))'
    jq -c --arg id "$(jq -r .id <<<"$ARGS")" '.servers[$id]' "$FILE" | ok ;;
delete-server) need; save 'del(.servers[$args.id])'; echo '{"result": null}' ;;
list-servers) jq -c '[.servers[]]' "$FILE" | ok ;;
get-server-info) jq -c --arg id "$(jq -r .id <<<"$ARGS")" '.servers[$id]' "$FILE" | ok ;;
start-server | reboot-server) need; save '.servers[$args.id].status = "running"'; echo '{"result": null}' ;;
stop-server) need; save '.servers[$args.id].status = "stopped"'; echo '{"result": null}' ;;
configure-firewall) need; save '.servers[$args.id].firewall_rules = $args.rules'; echo '{"result": null}' ;;
get-ssh-access)
    need
    jq -c --arg id "$(jq -r .id <<<"$ARGS")" '{result: {host: .servers[$id].public_ip, port: 22, user: "root", key_path: null}}' "$FILE" ;;
get-pricing)
    echo '{"result": [{"plan": "small", "zone": null, "hourly": 0.0068, "monthly": 5.0, "currency": "USD"},
        {"plan": "large", "zone": null, "hourly": 0.0548, "monthly": 40.0, "currency": "USD"}]}' ;;
get-plans)
    echo '{"result": [{"name": "small", "cores": 1, "memory_mb": 1024, "storage_gb": 10},
        {"name": "large", "cores": 4, "memory_mb": 8192, "storage_gb": 80}]}' ;;
get-zones) jq -c '{result: map({name: ., description: ("zone " + .)})}' <<<"$ZONES" ;;
*) fail unsupported "operation $OP is not supported" ;;
esac
