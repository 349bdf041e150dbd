#!/usr/bin/env bash
# Runs the GitHub Actions workflows of examples/ci, shell step by shell step, in a temporary git
# repository against the sim provider, with a stand-in for the GitHub CLI that records comments
# and issues (test/gh) and a runner for the workflow files (test/run-workflow.py), and checks
# what a team would see: one sticky plan comment per pull request, an encrypted plan artifact,
# the merge applying exactly the reviewed plan (and refusing anything else), policy failures
# blocking the apply, one drift issue opened, updated and closed; drift-cron.sh under cron's PATH.
#
#   examples/ci/test.sh [PROV_BINARY]     (default: prov on PATH; .ci/run passes the built one)
#
# Needs bash, git, jq, curl, python3, and PyYAML for $PYTHON (default python3). Exit 0 when every
# check passed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${PROV_BIN:-$(command -v prov || true)}}
[[ -n $bin && -x $bin ]] || { echo "test.sh: no prov binary (pass its path)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
py=${PYTHON:-python3}
for tool in git python3 jq curl "$py"; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is needed" >&2; exit 1; }
done
py=$(command -v "$py")
"$py" -c 'import yaml' 2>/dev/null || { echo "test.sh: PyYAML is needed for $py (python3-yaml, or PYTHON=a python that has it)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0
pass() { checks=$((checks + 1)); echo "ok - $*"; }
die() { echo "FAIL - $*" >&2; exit 1; }

# The GitLab pipeline is not run here: its YAML must parse and every script block pass `bash -n`.
"$py" - "$here/gitlab/.gitlab-ci.yml" <<'PY' || die "gitlab/.gitlab-ci.yml"
import subprocess, sys, yaml
ci = yaml.safe_load(open(sys.argv[1]))
pre = "\n".join(ci["default"]["before_script"])
for name, job in ci.items():
    if isinstance(job, dict) and "script" in job:
        script = pre + "\n" + "\n".join(job["script"])
        subprocess.run(["bash", "-n", "-c", script], check=True)
PY
pass "gitlab/.gitlab-ci.yml parses and its scripts are valid bash"

# A release of the binary under test, where install-prov.sh downloads it from (file:// URL).
version=$("$bin" --version | awk '{print $2}')
mkdir -p "$tmp/releases" "$tmp/stage"
cp "$bin" "$tmp/stage/prov"
tar -C "$tmp/stage" -czf "$tmp/releases/prov-$version-x86_64-linux.tar.gz" prov
(cd "$tmp/releases" && sha256sum "prov-$version-x86_64-linux.tar.gz" > "prov-$version-x86_64-linux.tar.gz.sha256")

# The environment of every job: a home of its own (install-prov.sh installs there), prov not on
# PATH until a job installs it, the gh stand-in on PATH.
export HOME="$tmp/home" GH_STUB_DIR="$tmp/gh" ARTIFACTS_DIR="$tmp/artifacts"
mkdir -p "$HOME" "$GH_STUB_DIR" "$ARTIFACTS_DIR"
export PATH="$here/test:/usr/local/bin:/usr/bin:/bin"
command -v prov >/dev/null && die "a prov on PATH ($(command -v prov)) would hide install-prov.sh"
export GITHUB_REPOSITORY="acme/infra"
export VARS_JSON="{\"PROV_RELEASE_URL\": \"file://$tmp/releases\"}"
export SECRETS_JSON='{"PROV_ENCRYPTION_KEY": "ci-key-0123456789abcdef0123"}'
export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.invalid GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.invalid
unset PROV_ENCRYPTION_KEY PROV_ENCRYPTION_KEY_FILE PROV_BACKEND PROV_PG_CONN
wf="$here/test/run-workflow.py"
state() { jq -r "$1" "$GH_STUB_DIR/state.json"; }

repo="$tmp/repo"
mkdir -p "$repo/.github/workflows" "$repo/ci" "$repo/infra/prod" "$repo/policy"
cp "$here"/github/workflows/*.yml "$repo/.github/workflows/"
cp "$here/install-prov.sh" "$repo/ci/"
cd "$repo"
printf '.prov/\n.base/\n' > .gitignore
# The sim provider's world and the sled state live in infra/prod/.prov, shared by every job
# here as a real state backend would be.
config() { # $1: web's plan, $2: the database password, $3: extra servers
  cat > infra/prod/main.ncl <<NCL
{
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-a",
           taskservs = { pg = { version = "1.0.0", settings = { user = "app", password = "$2" },
                                sensitive = ["settings.password"] } } },
    web = { provider = "sim", plan = "$1", zone = "sim-a", tags = { db = "\${server.db.private_ip}" } },
    $3
  },
}
NCL
}
cat > policy/servers.rego <<'REGO'
package main

import rego.v1

deny contains msg if {
	some rc in input.resource_changes
	rc.type == "server"
	rc.change.after.plan == "xlarge"
	msg := sprintf("%s: plan xlarge is not allowed", [rc.address])
}
REGO
config small "s3cr3t-pw-A" ""
git init -q -b main .
git add -A && git commit -qm "infra: db and web"
echo '{}' > "$GH_STUB_DIR/state.json"
# What exists already: the first two servers, applied.
"$bin" -C infra/prod apply --auto-approve > "$tmp/initial.log" 2>&1 || { cat "$tmp/initial.log"; die "initial apply"; }

# Runs WORKFLOW for EVENT with the payload EVENT_JSON at commit SHA. Sets $code and $log.
run() { # workflow event sha [event-json]
  log="$tmp/run-$checks.log"
  set +e
  EVENT_JSON=${4:-'{}'} GITHUB_SHA=$3 GITHUB_HEAD_SHA=$3 "$py" "$wf" ".github/workflows/$1" "$2" > "$log" 2>&1
  code=$?
  set -e
  return 0
}
# A push to pull request N (the branch checked out): the validate job (pull_request, no
# secrets), which must pass, then the plan job (pull_request_target). Sets $code and $log.
pr() { # number
  local head base payload
  head=$(git rev-parse HEAD)
  base=$(git rev-parse main)
  payload="{\"number\": $1, \"pull_request\": {\"head\": {\"sha\": \"$head\"}, \"base\": {\"sha\": \"$base\"}}}"
  run prov.yml pull_request "$head" "$payload"
  expect 0 "validate job of pull request #$1"
  grep -q "=== job validate {'workspace': 'infra/prod'}: success" "$log" || { cat "$log"; die "validate did not run"; }
  run prov.yml pull_request_target "$base" "$payload"
}
expect() { # code description
  [[ $code == "$1" ]] || { cat "$log" >&2; die "$2: exit $code, expected $1"; }
}
merge() { # branch pr-number → merges into main, records the pull request
  git checkout -q main
  git merge -q --no-ff "$1" -m "Merge pull request #$2"
  local m head
  m=$(git rev-parse HEAD)
  head=$(git rev-parse "$1")
  jq --arg n "$2" --arg m "$m" --arg h "$head" \
    '.pulls[$n] = {number: ($n | tonumber), head: {sha: $h}, merge_commit_sha: $m}' \
    "$GH_STUB_DIR/state.json" > "$tmp/s" && mv "$tmp/s" "$GH_STUB_DIR/state.json"
  merged=$m
}
sim() { "$bin" -C infra/prod sim list; }

# 1. A pull request: plan, comment, policy, artifact.
git checkout -q -b resize
config medium "s3cr3t-pw-A" ""
git commit -qam "web: medium"
pr 1
expect 0 "plan job of pull request #1"
grep -q "prov $version" "$log" || die "install-prov.sh did not install prov"
[[ $(state '.comments["1"] | length') == 1 ]] || die "one comment expected on #1"
body=$(state '.comments["1"][0].body')
grep -q '<!-- prov-plan: infra/prod -->' <<<"$body" || die "the comment lacks its marker"
grep -q 'policy check: success' <<<"$body" || die "the comment lacks the policy result"
grep -q '### prov plan: 0 to add, 1 to change, 0 to replace, 0 to destroy' <<<"$body" || die "the comment lacks the Markdown plan summary"
grep -q 'server.web' <<<"$body" || die "the comment lacks the plan"
grep -q 's3cr3t' <<<"$body" && die "the comment shows a secret"
pass "pull request #1: one plan comment, policy result, no secret"
artifact=$(ls -d "$ARTIFACTS_DIR"/*/"prov-plan-infra-prod-$(git rev-parse HEAD)")
head -c 40 "$artifact/plan.bin" | grep -q '"prov-encrypted"' || die "plan.bin is not encrypted"
grep -q 's3cr3t' "$artifact/plan.bin" "$artifact/plan.json" && die "a secret in the artifact"
jq -e '.prov.review.items["server.web"].action == "update"' "$artifact/plan.json" >/dev/null \
  || die "plan.json lacks the reviewed plan"
jq -e '.prov.untrusted == true' "$artifact/plan.json" >/dev/null || die "the pull request was not planned in untrusted mode"
pass "plan artifact: plan.bin encrypted, plan.json reviewable, no secret in either"

# 2. Another push to the same pull request: the comment is updated in place.
config large "s3cr3t-pw-A" ""
git commit -qam "web: large"
pr 1
expect 0 "plan job of pull request #1, second push"
[[ $(state '.comments["1"] | length') == 1 && $(state '.comments["1"][0].edits') == 1 ]] \
  || die "the plan comment was not updated in place"
state '.comments["1"][0].body' | grep -q '"large"' || die "the updated comment lacks the new plan"
pass "second push: the same comment, updated"

# 3. Merge: apply exactly the reviewed plan.
merge resize 1
run prov.yml push "$merged"
expect 0 "apply job after merging #1"
grep -q "Apply complete" "$log" || die "nothing applied"
sim | grep -q large || die "web is not large after the apply"
"$bin" -C infra/prod plan --detailed-exitcode >/dev/null || die "not converged"
pass "merge of #1 applied the reviewed plan and converged"

# 4. Reviewed, then the world changed before the merge: refused, nothing changed.
git checkout -q -b password
config large "s3cr3t-pw-B" ""
git commit -qam "db: rotate the password"
pr 2
expect 0 "plan job of pull request #2"
"$bin" -C infra/prod sim set web plan medium >/dev/null
before=$("$bin" -C infra/prod state pull)
merge password 2
run prov.yml push "$merged"
expect 1 "apply job after merging #2 with drift since the review"
grep -q "differs from the reviewed plan" "$log" || die "the refusal does not say why"
grep -q 'server.web: not in the reviewed plan; now update' "$log" || die "the difference is not shown"
grep -q 's3cr3t' "$log" && die "the refusal shows a secret"
[[ $("$bin" -C infra/prod state pull) == "$before" ]] || die "the refused apply changed the state"
pass "drift between review and merge: apply refused with the difference, nothing changed"

# 5. Nightly drift: one issue, updated in place, closed when the drift is gone; no ignore file.
[[ -e infra/prod/drift-ignore.json ]] && die "the test expects no ignore file"
run drift.yml schedule "$merged"
expect 0 "drift job with drift"
[[ $(state '[.issues[] | select(.state == "open")] | length') == 1 ]] || die "one open drift issue expected"
[[ $(state '.issues[0].title') == "prov drift: infra/prod" ]] || die "the issue is not named after the workspace"
state '.issues[0].body' | grep -q 'server.web' || die "the issue lacks the drift"
run drift.yml schedule "$merged"
expect 0 "drift job, second night"
[[ $(state '.issues | length') == 1 && $(state '.issues[0].edits') == 1 ]] || die "the drift issue was not updated in place"
"$bin" -C infra/prod sim set web plan large >/dev/null
run drift.yml schedule "$merged"
expect 0 "drift job without drift"
[[ $(state '.issues[0].state') == closed ]] || die "the drift issue was not closed"
pass "drift: one issue per workspace, updated in place, closed when the drift is gone"

# The reviewed plan of #2 applies now that the world is as reviewed (a re-run of the job).
run prov.yml push "$merged"
expect 0 "apply job of #2, re-run"
pass "re-run of the refused apply once the world is back: applied"

# 6. A policy failure blocks the merge's apply.
git checkout -q -b huge
config large "s3cr3t-pw-B" 'big = { provider = "sim", plan = "xlarge", zone = "sim-a" },'
git commit -qam "big server"
pr 3
expect 1 "plan job of pull request #3 (policy failure)"
state '.comments["3"][0].body' | grep -q 'policy check: failure' || die "the comment does not show the policy failure"
state '.comments["3"][0].body' | grep -q 'plan xlarge is not allowed' || die "the comment lacks the policy message"
merge huge 3
run prov.yml push "$merged"
expect 1 "apply job after merging #3"
grep -q "passed the policies: nothing was reviewed" "$log" || die "the apply did not refuse for lack of a reviewed plan"
sim | grep -q big && die "the unreviewed server was created"
pass "policy failure: the comment says so, the merge applies nothing"

# 7. A push to main that no pull request reviewed: nothing applied.
git revert --no-edit -m 1 HEAD >/dev/null
run prov.yml push "$(git rev-parse HEAD)"
expect 1 "apply job of an unreviewed push"
grep -q "was not merged from a pull request" "$log" || die "the unreviewed push was not refused"
pass "unreviewed push to main: refused"

# 8. The drift check failing is an alert (exit 1), and leaves the issues alone.
echo '{ servers = ' > infra/prod/main.ncl
issues_before=$(state '.issues')
run drift.yml schedule "$(git rev-parse HEAD)"
expect 1 "drift job with a broken configuration"
[[ $(state '.issues') == "$issues_before" ]] || die "a failed check touched the issues"
pass "drift check failure: the job fails, no issue touched"
git checkout -q -- infra/prod/main.ncl

# 9. drift-cron.sh under cron's environment: PATH=/usr/bin:/bin, prov in ~/.local/bin.
set +e
env -i HOME="$HOME" PATH=/usr/bin:/bin LOGNAME=ci SHELL=/bin/sh bash "$here/drift-cron.sh" "$repo/infra/prod" > "$tmp/cron.log" 2>&1
c=$?
set -e
[[ $c == 0 ]] || { cat "$tmp/cron.log"; die "drift-cron.sh under cron's PATH: exit $c"; }
"$bin" -C infra/prod sim set web plan medium >/dev/null
set +e
env -i HOME="$HOME" PATH=/usr/bin:/bin bash "$here/drift-cron.sh" "$repo/infra/prod" > "$tmp/cron.log" 2>&1
c=$?
env -i HOME=/nonexistent PATH=/usr/bin:/bin bash "$here/drift-cron.sh" "$repo/infra/prod" > "$tmp/cron2.log" 2>&1
c2=$?
set -e
[[ $c == 2 ]] || { cat "$tmp/cron.log"; die "drift-cron.sh with drift: exit $c, expected 2"; }
[[ $c2 == 1 ]] && grep -q "prov not found" "$tmp/cron2.log" || { cat "$tmp/cron2.log"; die "drift-cron.sh without prov: exit $c2, expected 1"; }
pass "drift-cron.sh under cron's PATH: 0 without drift, 2 with, 1 (not 127) without prov"

echo "examples/ci/test.sh: $checks checks passed"
