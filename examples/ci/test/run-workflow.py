#!/usr/bin/env python3
"""Runs one GitHub Actions workflow's jobs for one event, here, the way a runner would.

Used by examples/ci/test.sh. Each selected job's steps run in order in the current directory
(the repository): `run:` steps with bash (`bash --noprofile --norc -eo pipefail`, as Actions
does), with the workflow's, job's and step's `env:`, `${{ }}` expressions expanded,
`$GITHUB_OUTPUT`/`$GITHUB_ENV`/`$GITHUB_PATH` honoured, step `if:` conditions,
`continue-on-error`, matrices; `uses:` steps of the actions these workflows use are emulated
(cache: nothing is cached; checkout: the repository is here, at the commit under test, and a
checkout of another ref into `path` is that commit's tree;
upload-artifact/download-artifact: a directory per artifact name in $ARTIFACTS_DIR).

Usage: run-workflow.py WORKFLOW.yml EVENT [JOB...]
Environment: ARTIFACTS_DIR, GH_STUB_DIR (the gh stand-in's records: each run is recorded there
so a later workflow can look it up through `gh api .../actions/workflows/W/runs`), EVENT_JSON
(the event payload as JSON, e.g. {"number": 7}), SECRETS_JSON, VARS_JSON, GITHUB_SHA,
GITHUB_HEAD_SHA (pull requests: the branch's head, as runs are looked up by), GITHUB_REPOSITORY.
Exit status: 0 when every selected job succeeded, 1 otherwise. Anything the emulation does not
understand is an error (so a workflow never passes here by being misread).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml


class Unsupported(Exception):
    pass


def lookup(ctx, path):
    cur = ctx
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part, "")
        else:
            return ""
    return cur


TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+)|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<fn>[A-Za-z_]+\(\))|(?P<ref>[A-Za-z_][A-Za-z0-9_.\-]*))"
)


def evaluate(expr, ctx, status):
    """A small subset of the Actions expression language: literals, context references,
    == != && || ! ( ), success() failure() always() cancelled()."""
    tokens = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"expression {expr!r} at {expr[pos:]!r}")
        pos = m.end()
        if m.group("str") is not None:
            tokens.append(("v", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            tokens.append(("v", m.group("num")))
        elif m.group("op") is not None:
            tokens.append(("op", m.group("op")))
        elif m.group("fn") is not None:
            fn = m.group("fn")[:-2]
            if fn not in ("success", "failure", "always", "cancelled"):
                raise Unsupported(f"function {fn}() in {expr!r}")
            tokens.append(
                ("v", {"success": status == "success", "failure": status == "failure",
                       "always": True, "cancelled": False}[fn])
            )
        else:
            ref = m.group("ref")
            if ref in ("true", "false"):
                tokens.append(("v", ref == "true"))
            else:
                tokens.append(("v", lookup(ctx, ref)))
    tokens.append(("end", None))
    i = 0

    def peek():
        return tokens[i]

    def take():
        nonlocal i
        i += 1
        return tokens[i - 1]

    def primary():
        kind, val = take()
        if kind == "v":
            return val
        if (kind, val) == ("op", "!"):
            return not truthy(primary())
        if (kind, val) == ("op", "("):
            v = disjunction()
            if take() != ("op", ")"):
                raise Unsupported(f"unbalanced parentheses in {expr!r}")
            return v
        raise Unsupported(f"unexpected {val!r} in {expr!r}")

    def comparison():
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            op = take()[1]
            right = primary()
            eq = str(left).lower() == str(right).lower() if not isinstance(left, bool) else left == truthy(right)
            left = eq if op == "==" else not eq
        return left

    def conjunction():
        left = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            left = right if truthy(left) else left
        return left

    def disjunction():
        left = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            left = left if truthy(left) else right
        return left

    v = disjunction()
    if peek()[0] != "end":
        raise Unsupported(f"trailing tokens in {expr!r}")
    return v


def truthy(v):
    return v not in (False, "", None, 0, "0") if not isinstance(v, str) else v != ""


def expand(text, ctx, status="success"):
    if not isinstance(text, str):
        return text

    def one(m):
        v = evaluate(m.group(1), ctx, status)
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def condition(cond, ctx, status):
    if cond is None:
        return status == "success"
    cond = str(cond).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", cond, re.S)
    expr = m.group(1) if m else cond
    uses_status = re.search(r"\b(success|failure|always|cancelled)\(\)", expr)
    v = truthy(evaluate(expr, ctx, status))
    return v if uses_status else (v and status == "success")


def read_kv(path):
    out = {}
    if not os.path.exists(path):
        return out
    lines = open(path).read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^([^=<]+)<<(.+)$", line)
        if m:
            name, delim = m.group(1), m.group(2)
            val = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                val.append(lines[i])
                i += 1
            out[name] = "\n".join(val)
        elif "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        i += 1
    return out


def emulate(uses, with_, ctx, env):
    name = uses.split("@")[0]
    w = {k: expand(v, ctx) for k, v in (with_ or {}).items()}
    # Artifacts belong to a run, as on GitHub: ARTIFACTS_DIR/RUN_ID/NAME.
    artifacts = os.path.join(os.environ["ARTIFACTS_DIR"], str(w.get("run-id") or ctx["github"]["run_id"]))
    if name == "actions/cache":
        return 0
    if name == "actions/checkout":
        # The job's directory is the repository, checked out at the commit under test; another
        # ref goes into `path` (a tree of that commit, as a second checkout would be).
        ref = w.get("ref")
        path = w.get("path")
        if not path:
            head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
            if ref and ref != head:
                print(f"checkout: the repository is at {head}, the step wants {ref}", file=sys.stderr)
                return 1
            return 0
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        archive = subprocess.run(["git", "archive", ref or "HEAD"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", path], input=archive.stdout, check=True)
        return 0
    if name == "actions/upload-artifact":
        dest = os.path.join(artifacts, w["name"])
        os.makedirs(artifacts, exist_ok=True)
        if os.path.exists(dest):
            if str(w.get("overwrite", "false")).lower() != "true":
                print(f"upload-artifact: an artifact named {w['name']} exists", file=sys.stderr)
                return 1
            shutil.rmtree(dest)
        os.makedirs(dest)
        found = False
        for p in str(w["path"]).split("\n"):
            p = p.strip()
            if not p:
                continue
            if os.path.exists(p):
                shutil.copy(p, os.path.join(dest, os.path.basename(p)))
                found = True
        if not found and w.get("if-no-files-found", "warn") == "error":
            return 1
        print(f"upload-artifact: {w['name']}: {sorted(os.listdir(dest))}")
        return 0
    if name == "actions/download-artifact":
        src = os.path.join(artifacts, w["name"])
        if not os.path.isdir(src):
            print(f"download-artifact: no artifact {w['name']}", file=sys.stderr)
            return 1
        dest = w.get("path") or "."
        os.makedirs(dest, exist_ok=True)
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), os.path.join(dest, f))
        return 0
    raise Unsupported(f"uses: {uses}")


def load_state():
    path = os.path.join(os.environ["GH_STUB_DIR"], "state.json")
    return json.load(open(path)) if os.path.exists(path) else {}


def record_run(run_id, workflow_file, event, conclusion, artifacts):
    path = os.path.join(os.environ["GH_STUB_DIR"], "state.json")
    state = load_state()
    runs = state.setdefault("runs", [])
    runs.append({
        "id": run_id,
        "workflow": os.path.basename(workflow_file),
        "event": event,
        "head_sha": os.environ.get("GITHUB_HEAD_SHA") or os.environ.get("GITHUB_SHA", ""),
        "conclusion": conclusion,
        "status": "completed",
        "artifacts": artifacts,
    })
    json.dump(state, open(path, "w"), indent=1)


def run_job(wf, job_id, job, base_ctx, base_env, matrix):
    ctx = json.loads(json.dumps(base_ctx))
    ctx["matrix"] = matrix
    env = dict(base_env)
    env.update({k: str(expand(v, ctx)) for k, v in (wf.get("env") or {}).items()})
    ctx["env"] = dict(env)
    env.update({k: str(expand(v, ctx)) for k, v in (job.get("env") or {}).items()})
    ctx["env"] = dict(env)
    ctx["steps"] = {}
    status = "success"
    uploaded = []
    label = job_id + (f" {matrix}" if matrix else "")
    tmp = tempfile.mkdtemp(prefix="gha-")
    extra_path = []
    for n, step in enumerate(job.get("steps", [])):
        name = step.get("name") or step.get("uses") or f"step {n + 1}"
        if not condition(step.get("if"), ctx, status):
            print(f"--- [{label}] {name}: skipped", flush=True)
            if step.get("id"):
                ctx["steps"][step["id"]] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        print(f"--- [{label}] {name}", flush=True)
        senv = dict(env)
        senv.update({k: str(expand(v, ctx)) for k, v in (step.get("env") or {}).items()})
        out_file = os.path.join(tmp, f"output-{n}")
        env_file = os.path.join(tmp, f"env-{n}")
        path_file = os.path.join(tmp, f"path-{n}")
        for f in (out_file, env_file, path_file):
            open(f, "w").close()
        senv.update(GITHUB_OUTPUT=out_file, GITHUB_ENV=env_file, GITHUB_PATH=path_file)
        senv["PATH"] = ":".join(extra_path + [senv["PATH"]])
        if "run" in step:
            script = expand(step["run"], ctx)
            code = subprocess.call(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env=senv
            )
        elif "uses" in step:
            if step["uses"].startswith("actions/upload-artifact"):
                uploaded.append(expand(step["with"]["name"], ctx))
            code = emulate(step["uses"], step.get("with"), ctx, senv)
        else:
            raise Unsupported(f"step {name} has neither run nor uses")
        outputs = read_kv(out_file)
        env.update(read_kv(env_file))
        ctx["env"] = dict(env)
        extra_path = [p for p in open(path_file).read().splitlines() if p] + extra_path
        outcome = "success" if code == 0 else "failure"
        conclusion = "success" if code == 0 or step.get("continue-on-error") else "failure"
        if step.get("id"):
            ctx["steps"][step["id"]] = {"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
        if conclusion == "failure":
            print(f"--- [{label}] {name}: failed (exit {code})", flush=True)
            status = "failure"
    shutil.rmtree(tmp, ignore_errors=True)
    return status, uploaded


def main():
    wf_path, event = sys.argv[1], sys.argv[2]
    only = set(sys.argv[3:])
    wf = yaml.safe_load(open(wf_path))
    # PyYAML reads the key `on` as True.
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        on = {on: {}}
    if event not in on:
        raise Unsupported(f"{wf_path} does not run on {event}")
    payload = json.loads(os.environ.get("EVENT_JSON", "{}"))
    ctx = {
        "github": {
            "event_name": event,
            "event": payload,
            "sha": os.environ.get("GITHUB_SHA", ""),
            "repository": os.environ.get("GITHUB_REPOSITORY", ""),
            "run_id": str(1000 + len(load_state().get("runs", []))),
            "server_url": "https://github.example",
            "token": "stand-in-token",
            "ref": os.environ.get("GITHUB_REF", ""),
        },
        "secrets": json.loads(os.environ.get("SECRETS_JSON", "{}")),
        "runner": {"os": "Linux", "temp": tempfile.gettempdir()},
        "vars": json.loads(os.environ.get("VARS_JSON", "{}")),
    }
    base_env = dict(os.environ)
    base_env.update(
        GITHUB_ACTIONS="true", GITHUB_EVENT_NAME=event, CI="true",
        GITHUB_RUN_ID=ctx["github"]["run_id"],
        GITHUB_SERVER_URL=ctx["github"]["server_url"],
    )
    ok = True
    uploaded = []
    for job_id, job in wf["jobs"].items():
        if only and job_id not in only:
            continue
        if "if" in job and not condition(job["if"], ctx, "success"):
            print(f"=== job {job_id}: skipped for {event}", flush=True)
            continue
        matrix = (job.get("strategy") or {}).get("matrix")
        combos = [{}]
        if matrix:
            combos = []
            keys = [k for k in matrix if k not in ("include", "exclude")]
            if matrix.get("include") or matrix.get("exclude") or len(keys) != 1:
                raise Unsupported("matrices other than one list")
            combos = [{keys[0]: v} for v in matrix[keys[0]]]
        for combo in combos:
            print(f"=== job {job_id} {combo or ''}", flush=True)
            status, up = run_job(wf, job_id, job, ctx, base_env, combo)
            uploaded += up
            ok = ok and status == "success"
            print(f"=== job {job_id} {combo or ''}: {status}", flush=True)
    record_run(int(ctx["github"]["run_id"]), wf_path, event, "success" if ok else "failure", uploaded)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Unsupported as e:
        print(f"run-workflow.py: unsupported: {e}", file=sys.stderr)
        sys.exit(3)
