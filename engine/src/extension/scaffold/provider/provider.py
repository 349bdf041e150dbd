#!/usr/bin/env python3
"""The @NAME@ provider for prov (exec protocol 1, docs/exec-protocol.md).

One JSON request on stdin, one JSON response on stdout. Servers live in
WORKSPACE/.prov/@NAME@/servers.json, under an flock: prov runs calls in parallel.
"""
import fcntl
import json
import os
import sys

NAME = "@NAME@"
VERSION = "0.1.0"
PLANS = [
    {"name": "small", "cores": 1, "memory_mb": 1024, "storage_gb": 10},
    {"name": "large", "cores": 4, "memory_mb": 8192, "storage_gb": 80},
]
PRICES = {"small": 5.0, "large": 40.0}
OPERATIONS = [
    "info", "validate-config", "test-connection", "create-server", "delete-server",
    "list-servers", "get-server-info", "start-server", "stop-server", "reboot-server",
    "update-server", "get-pricing", "get-plans", "get-zones", "get-ssh-access",
    "configure-firewall",
]


class Fail(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def zones(req):
    return req["settings"].get("zones") or [NAME + "-a"]


class Store:
    """The servers file, locked for one call."""

    def __init__(self, req):
        d = os.path.join(req["workspace"]["dir"], ".prov", NAME)
        os.makedirs(d, exist_ok=True)
        self.path = os.path.join(d, "servers.json")
        self.lock = open(self.path + ".lock", "a")

    def __enter__(self):
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {"next": 1, "servers": {}}
        return self

    def save(self):
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(self.path + ".tmp", self.path)

    def __exit__(self, *exc):
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()

    def get(self, sid):
        if sid not in self.data["servers"]:
            raise Fail("not_found", "server %s does not exist" % sid)
        return self.data["servers"][sid]


def check(req, spec):
    if spec["plan"] not in PRICES:
        raise Fail("invalid", "unknown plan %r (%s)" % (spec["plan"], ", ".join(PRICES)))
    if spec["zone"] not in zones(req):
        raise Fail("invalid", "unknown zone %r (%s)" % (spec["zone"], ", ".join(zones(req))))


def create(req, a):
    spec, owner = a["spec"], a["owner"]
    check(req, spec)
    with Store(req) as st:
        n = st.data["next"]
        st.data["next"] = n + 1
        tags = dict(spec.get("tags") or {})
        tags["prov:workspace"], tags["prov:address"] = owner["workspace"], owner["address"]
        s = {
            "id": "%s-%04d" % (NAME, n), "hostname": spec["hostname"], "status": "running",
            "plan": spec["plan"], "zone": spec["zone"], "os": spec["os"],
            "public_ip": "192.0.2.%d" % (n % 250 + 1), "private_ip": "10.0.0.%d" % (n % 250 + 1),
            "tags": tags, "firewall_rules": spec.get("firewall_rules") or [], "extra": {},
        }
        st.data["servers"][s["id"]] = s
        st.save()
        return s


def update(req, a):
    after = a["update"]["after"]
    check(req, after)
    with Store(req) as st:
        s = st.get(a["id"])
        tags = {k: v for k, v in s["tags"].items() if k.startswith("prov:")}
        tags.update(after.get("tags") or {})
        s.update(tags=tags, plan=after["plan"], firewall_rules=after.get("firewall_rules") or [])
        st.save()
        return s


def mutate(req, sid, **fields):
    with Store(req) as st:
        st.get(sid).update(fields)
        st.save()


def delete(req, a):
    with Store(req) as st:
        st.get(a["id"])
        del st.data["servers"][a["id"]]
        st.save()


def info(req, a):
    with Store(req) as st:
        return st.data["servers"].get(a["id"])


def listing(req, a):
    with Store(req) as st:
        return list(st.data["servers"].values())


def validate(req, a):
    errors = []
    if not isinstance(a["settings"].get("zones", []), list):
        errors.append("zones must be a list of zone names")
    return {"errors": errors, "warnings": []}


def ssh(req, a):
    with Store(req) as st:
        s = st.get(a["id"])
        return {"host": s["public_ip"], "port": 22, "user": "root", "key_path": None}


HANDLERS = {
    "info": lambda req, a: {
        "name": NAME, "version": VERSION, "interface": "exec", "supported_operations": OPERATIONS,
        "required_auth": [], "supported_os": ["debian-12", "ubuntu-22.04"], "regions": zones(req),
    },
    "validate-config": validate,
    "test-connection": lambda req, a: {"success": True, "message": "the servers file is writable"},
    "create-server": create,
    "delete-server": delete,
    "list-servers": listing,
    "get-server-info": info,
    "start-server": lambda req, a: mutate(req, a["id"], status="running"),
    "stop-server": lambda req, a: mutate(req, a["id"], status="stopped"),
    "reboot-server": lambda req, a: mutate(req, a["id"], status="running"),
    "update-server": update,
    "get-pricing": lambda req, a: [
        {"plan": p, "zone": None, "hourly": m / 730, "monthly": m, "currency": "USD"}
        for p, m in PRICES.items()
    ],
    "get-plans": lambda req, a: PLANS,
    "get-zones": lambda req, a: [{"name": z, "description": "zone " + z} for z in zones(req)],
    "get-ssh-access": ssh,
    "configure-firewall": lambda req, a: mutate(req, a["id"], firewall_rules=a["rules"]),
}


def main():
    req = json.load(sys.stdin)
    try:
        handler = HANDLERS.get(req["operation"])
        if handler is None:
            raise Fail("unsupported", "operation %s is not supported" % req["operation"])
        out = {"result": handler(req, req.get("arguments") or {})}
    except Fail as f:
        out = {"error": {"code": f.code, "message": f.message}}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
