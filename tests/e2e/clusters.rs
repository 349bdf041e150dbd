//! Clusters for real through the `prov` binary on local servers (root: network namespaces, so
//! scripts go over SSH): a workspace cluster extension (an application component with its own
//! scripts and templates, a workspace taskserv as a `taskserv` component) created in dependency
//! order, its status, a component stopped / downgraded outside prov found by drift and repaired
//! by the plan, scale and upgrade as plan actions, restart-component, requirements and cycles
//! refused at plan, `on_error = 'rollback`, destroy leaving nothing; then the built-in `buildkit`
//! cluster (containerd, buildah, registry from Debian) building, pushing and pulling an image,
//! and the `cicd` cluster (git daemon, buildbot master and workers) running a pushed commit's
//! tests. Skipped without root/ip/nft/sshd/apt; fails then with PROV_REQUIRE_ROOT_NET=1.

use super::*;
use serde_json::Value;

struct Destroy<'a>(&'a Ws);

impl Drop for Destroy<'_> {
    fn drop(&mut self) {
        let _ = self.0.prov(&["destroy", "--auto-approve"]);
    }
}

fn runnable(test: &str) -> bool {
    super::local::root_net_with(test, &["apt-get", "python3"])
}

/// Writes `files` (path relative to the workspace, contents) into the workspace.
fn put(ws: &Ws, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = ws.dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
}

/// A cluster extension `webapp` with one application component `web` (python's http.server
/// serving a page rendered from the cluster's and component's config, network and features)
/// and one that fails on purpose (`broken`), plus a workspace taskserv `marker`.
const EXTENSION: &[(&str, &str)] = &[
    (
        "extensions/clusters/webapp/manifest.toml",
        r#"[extension]
name = "webapp"
type = "cluster"
version = "1.0.0"
description = "a static page per replica, after a marker taskserv"

[cluster.components.web]
timeout = 60

[cluster.components.web.health]
endpoint = "http://{{ server.address }}:{{ settings.port }}/"
expect = "cluster {{ settings.cluster.name }}"
timeout = 2
retries = 40
interval = 0.25

[cluster.components.web.outputs]
url = "http://{{ server.address }}:{{ settings.port }}/"

[cluster.components.broken]
timeout = 30
"#,
    ),
    (
        "extensions/clusters/webapp/schemas/cluster.ncl",
        r#"let component_contract = {
  name | String,
  type | String,
  version | String | default = "",
  enabled | Bool | default = true,
  dependencies | Array String | default = [],
  config | { .. } | default = {},
  resources | { cpu | String | default = "", memory | String | default = "", storage | String | default = "", replicas | Number | default = 1 } | default = {},
} in
{
  Component = component_contract,
  ClusterConfig = {
    name | String,
    version | String | default = "1.0.0",
    description | String | default = "",
    components | Array component_contract,
    resources | { min_nodes | Number | default = 1, cpu_per_node | String | default = "2", memory_per_node | String | default = "4Gi", storage_per_node | String | default = "20Gi" } | default = {},
    network | { cluster_cidr | String | default = "10.244.0.0/16", service_cidr | String | default = "10.96.0.0/12", dns_domain | String | default = "cluster.local" } | default = {},
    features | { monitoring | Bool | default = true, logging | Bool | default = true, ingress | Bool | default = false, storage | Bool | default = true } | default = {},
  },
}
"#,
    ),
    (
        "extensions/clusters/webapp/components/web/templates/index.html.j2",
        "cluster {{ settings.cluster.name }} version {{ settings.component.version }} replica {{ settings.component.replica }} domain {{ settings.cluster.network.dns_domain }} monitoring {{ \"on\" if settings.cluster.features.monitoring else \"off\" }}\n",
    ),
    (
        "extensions/clusters/webapp/components/web/scripts/lib.sh",
        r#"PID="$PROV_STATE_DIR/web.pid"
web_start() {
  mkdir -p "$PROV_STATE_DIR"
  prov_stop_pid "$PID"
  nohup setsid python3 -m http.server "$PROV_SETTING_PORT" --bind "$PROV_SERVER_ADDRESS" --directory "$PROV_CONF_DIR" >"$PROV_STATE_DIR/web.log" 2>&1 </dev/null &
  echo $! > "$PID"
}
"#,
    ),
    (
        "extensions/clusters/webapp/components/web/scripts/deploy.sh",
        "mkdir -p \"$PROV_STATE_DIR\"\necho \"$PROV_VERSION\" > \"$PROV_STATE_DIR/VERSION\"\nweb_start\n",
    ),
    (
        "extensions/clusters/webapp/components/web/scripts/upgrade.sh",
        "echo \"$PROV_VERSION\" > \"$PROV_STATE_DIR/VERSION\"\nweb_start\n",
    ),
    ("extensions/clusters/webapp/components/web/scripts/configure.sh", "web_start\n"),
    ("extensions/clusters/webapp/components/web/scripts/restart.sh", "web_start\n"),
    (
        "extensions/clusters/webapp/components/web/scripts/status.sh",
        "[ -f \"$PROV_CONF_DIR/index.html\" ] || exit 4\necho \"version=$(cat \"$PROV_STATE_DIR/VERSION\")\"\nprov_pid_alive \"$PID\" || exit 3\n",
    ),
    (
        "extensions/clusters/webapp/components/web/scripts/remove.sh",
        "prov_stop_pid \"$PID\"\nrm -rf \"$PROV_CONF_DIR\" \"$PROV_STATE_DIR\"\n",
    ),
    (
        "extensions/clusters/webapp/components/broken/scripts/deploy.sh",
        "echo \"broken cannot deploy on $PROV_SERVER\" >&2\nexit 7\n",
    ),
    ("extensions/clusters/webapp/components/broken/scripts/status.sh", "exit 4\n"),
    ("extensions/clusters/webapp/components/broken/scripts/remove.sh", "true\n"),
    (
        "extensions/taskservs/marker/manifest.toml",
        "[extension]\nname = \"marker\"\ntype = \"taskserv\"\nversion = \"1.0.0\"\ndescription = \"writes a marker file\"\n",
    ),
    (
        "extensions/taskservs/marker/scripts/install.sh",
        "mkdir -p \"$PROV_STATE_DIR\"\necho \"${PROV_VERSION:-1}\" > \"$PROV_STATE_DIR/marker\"\n",
    ),
    ("extensions/taskservs/marker/scripts/configure.sh", "true\n"),
    ("extensions/taskservs/marker/scripts/uninstall.sh", "rm -rf \"$PROV_STATE_DIR\"\n"),
    (
        "extensions/taskservs/marker/scripts/status.sh",
        "[ -f \"$PROV_STATE_DIR/marker\" ] || exit 4\necho \"version=$(cat \"$PROV_STATE_DIR/marker\")\"\n",
    ),
];

/// The workspace: servers a and b, cluster `site` of the `webapp` extension.
fn site(version: &str, replicas: u32, extra: &str, components_extra: &str) -> String {
    format!(
        r#"{{
  providers = {{
    local = {{ bridge = "pvclu1", subnet = "10.213.140.0/24", defaults = {{ plan = "small", zone = "local" }} }},
  }},
  servers = {{ a = {{ provider = "local" }}, b = {{ provider = "local" }} }},
  clusters = {{
    site = {{
      implementation = "webapp",
      servers = ["a", "b"],
      version = "{version}",
      resources = {{ min_nodes = 2, cpu_per_node = "1", memory_per_node = "256Mi", storage_per_node = "1Gi" }},
      {extra}
      components = [
        {{ name = "marker", type = 'taskserv, version = "1" }},
        {{ name = "web", type = 'application, dependencies = ["marker"], config = {{ port = 8080 }}, resources.replicas = {replicas} }},
        {components_extra}
      ],
    }},
  }},
}}"#
    )
}

/// The record as `prov state show ADDR --json` prints it; null when it is not in the state.
fn record(ws: &Ws, address: &str) -> Value {
    let r = ws.prov(&["state", "show", address, "--json"]);
    if r.code != 0 {
        return Value::Null;
    }
    serde_json::from_str(&r.stdout).unwrap()
}

/// The server's address and its sandbox's root on this machine.
fn server(ws: &Ws, name: &str) -> (String, PathBuf) {
    let r = record(ws, &format!("server.{name}"));
    let ip = r["outputs"]["private_ip"].as_str().unwrap().to_string();
    let dir = r["outputs"]["extra"]["dir"].as_str().unwrap();
    (ip, Path::new(dir).join("root"))
}

/// An HTTP GET with curl (empty when nothing answers).
fn get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn workspace_cluster_extension_lifecycle() {
    if !runnable("workspace_cluster_extension_lifecycle") {
        return;
    }
    let ws = Ws::new(&site("1.0.0", 1, "", ""));
    put(&ws, EXTENSION);
    let _destroy = Destroy(&ws);
    ws.prov(&["cluster", "list"])
        .ok()
        .has("webapp")
        .has("broken,web")
        .has("buildkit")
        .has("cicd");

    // Requirements and cycles are plan errors naming the cluster, the field and the servers.
    ws.write(&site("1.0.0", 1, "", "").replace("min_nodes = 2", "min_nodes = 3"));
    ws.prov(&["plan"])
        .code(1)
        .has("cluster.site")
        .has("resources.min_nodes")
        .has("needs at least 3 node(s) but runs on 2 server(s) (a, b)");
    ws.write(
        &site("1.0.0", 1, "", "")
            .replace("memory_per_node = \"256Mi\"", "memory_per_node = \"8Gi\""),
    );
    ws.prov(&["plan"])
        .code(1)
        .has("resources.memory_per_node")
        .has("server.a has plan small with 512 MiB")
        .has("server.b has plan small with 512 MiB");
    ws.write(&site("1.0.0", 3, "", ""));
    ws.prov(&["plan"])
        .code(1)
        .has("components.web.resources.replicas")
        .has("3 replica(s), but cluster site runs on 2 server(s)");
    ws.write(&site("1.0.0", 1, "", "").replace(
        "{ name = \"marker\", type = 'taskserv, version = \"1\" }",
        "{ name = \"marker\", type = 'taskserv, version = \"1\", dependencies = [\"web\"] }",
    ));
    ws.prov(&["plan"])
        .code(1)
        .has("cycle")
        .has("cluster.site.web")
        .has("cluster.site.marker");

    // Created in dependency order: the cluster, the taskserv component, the application.
    ws.write(&site("1.0.0", 1, "", ""));
    ws.prov(&["plan"])
        .ok()
        .has("+ cluster.site (webapp)")
        .has("+ cluster.site.marker (webapp)")
        .has("+ cluster.site.web (webapp)");
    let applied = ws.prov(&["apply", "--auto-approve"]).ok();
    let pos = |s: &str| applied.stdout.find(s).unwrap_or(usize::MAX);
    assert!(
        pos("cluster.site.marker: created") < pos("cluster.site.web: created"),
        "{}",
        applied.stdout
    );
    let (a_ip, a_root) = server(&ws, "a");
    let (b_ip, b_root) = server(&ws, "b");
    assert_eq!(
        get(&format!("http://{a_ip}:8080/")).trim(),
        "cluster site version 1.0.0 replica 0 domain cluster.local monitoring on"
    );
    assert_eq!(
        get(&format!("http://{b_ip}:8080/")),
        "",
        "one replica: only on a"
    );
    assert!(a_root.join("var/lib/prov/marker/marker").is_file());
    assert!(
        !b_root.join("var/lib/prov/marker").exists(),
        "marker has one replica"
    );
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    let st = ws.prov(&["cluster", "status", "site"]).ok();
    assert!(
        st.stdout
            .contains("cluster.site (webapp) version 1.0.0 on a, b: running"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout.lines().any(|l| l.contains("web")
            && l.contains("application")
            && l.contains("running")
            && l.contains("1.0.0")
            && l.contains("1/1")),
        "{}",
        st.stdout
    );
    let j: Value =
        serde_json::from_str(&ws.prov(&["cluster", "status", "--json"]).ok().stdout).unwrap();
    assert_eq!(j[0]["status"]["status"], "running", "{j}");
    assert_eq!(j[0]["components"].as_array().unwrap().len(), 2, "{j}");

    // Stopped outside prov: drift sees it, the plan restarts it.
    let pid = std::fs::read_to_string(a_root.join("var/lib/prov/web/web.pid")).unwrap();
    Command::new("kill").arg(pid.trim()).status().unwrap();
    wait_gone(&pid);
    ws.prov(&["drift"])
        .code(2)
        .has("cluster.site.web: stopped outside prov");
    ws.prov(&["cluster", "status", "site"])
        .code(1)
        .has("stopped");
    ws.prov(&["plan"])
        .ok()
        .has("~ cluster.site.web (webapp) will be restarted (stopped outside prov)");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(get(&format!("http://{a_ip}:8080/")).contains("version 1.0.0"));

    // Scale 1 -> 2: a plan action; the second replica runs on b.
    ws.write(&site("1.0.0", 2, "", ""));
    ws.prov(&["plan"])
        .ok()
        .has("~ cluster.site.web (webapp) will be scaled 1 → 2 (scale)");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(get(&format!("http://{b_ip}:8080/")).contains("replica 1"));

    // The cluster's version: `web` (no version of its own) follows it and is upgraded in place.
    ws.write(&site("1.1.0", 2, "", ""));
    ws.prov(&["plan"])
        .ok()
        .has("~ cluster.site.web (webapp) will be upgraded 1.0.0 → 1.1.0 (upgrade)")
        .lacks("cluster.site.marker (webapp) will");
    ws.prov(&["apply", "--auto-approve"]).ok();
    for ip in [&a_ip, &b_ip] {
        assert!(
            get(&format!("http://{ip}:8080/")).contains("version 1.1.0"),
            "{ip}"
        );
    }

    // Another version installed outside prov: drift sees it, the plan upgrades it back.
    std::fs::write(b_root.join("var/lib/prov/web/VERSION"), "0.9\n").unwrap();
    ws.prov(&["drift"])
        .code(2)
        .has("cluster.site.web: version 1.1.0 recorded, 0.9 installed");
    ws.prov(&["plan"]).ok().has("will be upgraded 0.9 → 1.1.0");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");

    // Removed outside prov everywhere: the plan deploys it again.
    for root in [&a_root, &b_root] {
        let pid = std::fs::read_to_string(root.join("var/lib/prov/web/web.pid")).unwrap();
        Command::new("kill").arg(pid.trim()).status().unwrap();
        wait_gone(&pid);
        std::fs::remove_dir_all(root.join("etc/prov/web")).unwrap();
    }
    ws.prov(&["drift"])
        .code(2)
        .has("cluster.site.web: deleted outside prov");
    ws.prov(&["plan"]).ok().has("+ cluster.site.web (webapp)");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(get(&format!("http://{b_ip}:8080/")).contains("version 1.1.0"));

    // restart-component, outside a plan.
    let before = std::fs::read_to_string(a_root.join("var/lib/prov/web/web.pid")).unwrap();
    ws.prov(&["cluster", "restart", "site", "web"])
        .ok()
        .has("cluster.site.web: restarted (2 replica(s) running)");
    let after = std::fs::read_to_string(a_root.join("var/lib/prov/web/web.pid")).unwrap();
    assert_ne!(before, after, "a new process serves");
    ws.prov(&["cluster", "restart", "site", "nope"])
        .code(1)
        .has("no recorded component \"nope\" (recorded: marker, web)");

    // Destroy: components first, then the cluster and the servers; nothing left.
    ws.prov(&["destroy", "--auto-approve"]).ok();
    assert!(!a_root.exists() && !b_root.exists());
    assert_eq!(get(&format!("http://{a_ip}:8080/")), "");
    ws.prov(&["cluster", "status"])
        .ok()
        .has("No clusters in the state.");
}

#[test]
fn rollback_removes_what_the_apply_deployed() {
    if !runnable("rollback_removes_what_the_apply_deployed") {
        return;
    }
    let config = |on_error: &str| {
        site(
            "1.0.0",
            1,
            &format!("on_error = '{on_error},"),
            "{ name = \"broken\", type = 'application, dependencies = [\"web\"] },",
        )
        .replace("pvclu1", "pvclu2")
        .replace("10.213.140.0/24", "10.213.141.0/24")
    };
    let ws = Ws::new(&config("rollback"));
    put(&ws, EXTENSION);
    let _destroy = Destroy(&ws);
    let r = ws.prov(&["apply", "--auto-approve"]).code(1);
    let r = r
        .has("broken cannot deploy on")
        .has("cluster.site: rolled back (on_error = 'rollback): removed cluster.site.web, cluster.site.marker");
    drop(r);
    let (a_ip, a_root) = server(&ws, "a");
    assert_eq!(record(&ws, "cluster.site.web"), Value::Null);
    assert_eq!(record(&ws, "cluster.site.marker"), Value::Null);
    assert!(!a_root.join("var/lib/prov/marker").exists());
    assert_eq!(get(&format!("http://{a_ip}:8080/")), "");

    // 'continue: the failure is reported, what was deployed stays.
    ws.write(&config("continue"));
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("broken cannot deploy on");
    assert!(get(&format!("http://{a_ip}:8080/")).contains("cluster site"));
    assert_ne!(record(&ws, "cluster.site.web"), Value::Null);
    ws.prov(&["destroy", "--auto-approve"]).ok();
    assert!(!a_root.exists());
}

/// The example workspace `examples/clusters/NAME/main.ncl`.
fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/clusters/{name}/main.ncl")),
    )
    .unwrap()
}

/// Runs `script` on server `name`: in its network namespace (where its sshd and services run;
/// the sandbox shares this machine's filesystem); its standard output.
fn on_server(ws: &Ws, name: &str, script: &str) -> String {
    let netns = record(ws, &format!("server.{name}"))["outputs"]["extra"]["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new("ip")
        .args(["netns", "exec", &netns, "sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of a destroyed sandbox is left: its directory and any process running from it.
fn nothing_left(roots: &[PathBuf]) {
    for root in roots {
        assert!(!root.exists(), "{} is left", root.display());
        let sandbox = root.parent().unwrap().to_string_lossy().into_owned();
        for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            assert!(
                !cmd.contains(&sandbox),
                "process {:?} left: {cmd}",
                e.file_name()
            );
        }
    }
}

/// The built-in `buildkit` cluster with the builder Debian packages (buildah: BuildKit's release
/// archive cannot be downloaded on these machines): an image built from a Dockerfile on one
/// server, pushed to the cluster's registry, pulled back by digest on the other after scaling
/// the builder to it; an upgrade of the builder; destroy leaves nothing.
#[test]
fn buildkit_cluster_builds_pushes_and_pulls_an_image() {
    if !runnable("buildkit_cluster_builds_pushes_and_pulls_an_image") {
        return;
    }
    let config = example("buildkit");
    let ws = Ws::new(&config);
    let _destroy = Destroy(&ws);
    ws.prov(&["plan"])
        .ok()
        .has("+ cluster.build (buildkit)")
        .has("+ cluster.build.containerd (buildkit)")
        .has("+ cluster.build.buildah (buildkit)")
        .has("+ cluster.build.registry (buildkit)");
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 6 succeeded");
    let (ip1, root1) = server(&ws, "build-1");
    let (_, root2) = server(&ws, "build-2");
    let st = ws.prov(&["cluster", "status", "build"]).ok().stdout;
    for c in ["containerd", "buildah", "registry"] {
        assert!(
            st.lines().any(|l| l.contains(c) && l.contains("running")),
            "{st}"
        );
    }
    assert!(get(&format!("http://{ip1}:5000/v2/")).starts_with("{}"));

    // Build with the cluster's builder on build-1, push to the registry.
    let ctx = root1.join("tmp/prov-e2e-image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello from the build cluster\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    let buildah1 = root1.join("usr/local/bin/prov-buildah");
    let image = format!("{ip1}:5000/prov/hello");
    on_server(
        &ws,
        "build-1",
        &format!(
            "{b} build -q -t {image}:1 {ctx} && {b} push -q --digestfile {ctx}/digest {image}:1",
            b = buildah1.display(),
            ctx = ctx.display()
        ),
    );
    let digest = std::fs::read_to_string(ctx.join("digest")).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(get(&format!("http://{ip1}:5000/v2/prov/hello/tags/list")).contains("\"1\""));

    // Scale the builder to build-2 (a plan action), and pull the image back there by digest.
    let scaled = config.replace(
        "dependencies = [\"containerd\"],",
        "dependencies = [\"containerd\"],\n          resources.replicas = 2,",
    );
    ws.write(&scaled);
    ws.prov(&["plan"])
        .ok()
        .has("~ cluster.build.buildah (buildkit) will be scaled 1 → 2 (scale)")
        .has("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    ws.prov(&["apply", "--auto-approve"]).ok();
    let buildah2 = root2.join("usr/local/bin/prov-buildah");
    let pulled = on_server(
        &ws,
        "build-2",
        &format!(
            "{b} pull -q {image}@{digest} >/dev/null && {b} images --digests --format {{{{.Digest}}}}",
            b = buildah2.display(),
        ),
    );
    assert!(pulled.contains(digest.trim()), "{pulled}");

    // Upgrade the builder (a pin of the exact Debian version: one candidate is all the
    // archive offers), a plan action too.
    let upgraded = scaled.replace("version = \"1.28\",", "version = \"1.28.2\",");
    ws.write(&upgraded);
    ws.prov(&["plan"])
        .ok()
        .has("~ cluster.build.buildah (buildkit) will be upgraded 1.28 → 1.28.2 (upgrade)");
    ws.prov(&["apply", "--auto-approve"]).ok();
    let j: Value = serde_json::from_str(
        &ws.prov(&["cluster", "status", "build", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let buildah = j[0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "buildah")
        .unwrap();
    assert_eq!(buildah["status"]["version"], "1.28.2", "{j}");
    assert_eq!(buildah["status"]["replicas"], 2, "{j}");

    ws.prov(&["destroy", "--auto-approve"]).ok();
    nothing_left(&[root1, root2]);
    assert_eq!(get(&format!("http://{ip1}:5000/v2/")), "");
}

/// The built-in `cicd` cluster: a commit pushed to the cluster's git repository is tested by
/// buildbot on a worker, the result read through buildbot's REST API; a failing test script
/// fails its build; destroy leaves nothing.
#[test]
fn cicd_cluster_runs_a_pushed_commits_tests() {
    if !runnable("cicd_cluster_runs_a_pushed_commits_tests") {
        return;
    }
    let ws = Ws::new(&example("cicd"));
    let _destroy = Destroy(&ws);
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 7 succeeded");
    let (ip1, root1) = server(&ws, "ci-1");
    let (_, root2) = server(&ws, "ci-2");
    ws.prov(&["cluster", "status", "ci"]).ok().has("running");
    let api = format!("http://{ip1}:8010/api/v2");
    let workers = get(&format!("{api}/workers"));
    assert!(
        workers.contains("worker-0") && workers.contains("worker-1"),
        "{workers}"
    );

    // A working copy on this machine, pushing to git daemon.
    let wc = ws.dir.join("wc");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&wc)
            .env("GIT_AUTHOR_NAME", "prov")
            .env("GIT_AUTHOR_EMAIL", "prov@example.invalid")
            .env("GIT_COMMITTER_NAME", "prov")
            .env("GIT_COMMITTER_EMAIL", "prov@example.invalid")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::create_dir_all(&wc).unwrap();
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "remote",
        "add",
        "origin",
        &format!("git://{ip1}:9418/app.git"),
    ]);
    // Completed builds as buildbot's REST API lists them: (number, results).
    let builds = || -> Vec<(u64, u64)> {
        let j: Value = serde_json::from_str(&get(&format!("{api}/builds?complete=true")))
            .unwrap_or(Value::Null);
        j["builds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|b| {
                        (
                            b["number"].as_u64().unwrap_or(0),
                            b["results"].as_u64().unwrap_or(99),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // Pushes a commit with `test.sh` and waits for a new completed build; its results code.
    let mut commits = 0;
    let mut push_and_wait = |script: &str| -> u64 {
        let before = builds().len();
        for _attempt in 0..3 {
            commits += 1;
            std::fs::write(wc.join("test.sh"), script).unwrap();
            std::fs::write(wc.join("COMMIT"), commits.to_string()).unwrap();
            git(&["add", "."]);
            git(&["commit", "-q", "-m", &format!("commit {commits}")]);
            git(&["push", "-q", "origin", "main"]);
            // The poller records a branch it sees for the first time without building it:
            // a second push then builds.
            let t = std::time::Instant::now();
            while t.elapsed().as_secs() < 30 {
                let b = builds();
                if b.len() > before {
                    return b.iter().max().unwrap().1;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        panic!("no build after 3 pushes: {}", get(&format!("{api}/builds")));
    };
    assert_eq!(push_and_wait("echo tests pass\nexit 0\n"), 0, "SUCCESS");
    assert_eq!(
        push_and_wait("echo a test fails >&2\nexit 1\n"),
        2,
        "FAILURE"
    );

    ws.prov(&["destroy", "--auto-approve"]).ok();
    nothing_left(&[root1, root2]);
    assert_eq!(get(&format!("{api}/builders")), "");
}
