//! `prov extension new`: a working skeleton of each kind in the seed's layout (manifest,
//! schemas, templates, scripts or an exec program, tests, and the four documents). A fresh
//! skeleton passes `prov extension validate --strict` and `prov extension test` as it is: the
//! e2e tests check that for every kind and language.

use super::ExtensionKind;
use std::path::{Path, PathBuf};

/// The language of a provider's program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    Bash,
}

/// One file of a skeleton: path relative to the extension directory, contents, executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub contents: String,
    pub executable: bool,
}

const README: &str = include_str!("scaffold/common/README.md");
const API: &str = include_str!("scaffold/common/API.md");
const CHANGELOG: &str = include_str!("scaffold/common/CHANGELOG.md");

/// (path, contents, executable) of each kind's own files; `@NAME@` is replaced.
const TASKSERV: &[(&str, &str, bool)] = &[
    (
        "manifest.toml",
        include_str!("scaffold/taskserv/manifest.toml"),
        false,
    ),
    (
        "schemas/settings.ncl",
        include_str!("scaffold/taskserv/schemas/settings.ncl"),
        false,
    ),
    (
        "schemas/version.ncl",
        include_str!("scaffold/taskserv/schemas/version.ncl"),
        false,
    ),
    (
        "templates/@NAME@.conf.j2",
        include_str!("scaffold/taskserv/templates/@NAME@.conf.j2"),
        false,
    ),
    (
        "scripts/lib.sh",
        include_str!("scaffold/taskserv/scripts/lib.sh"),
        false,
    ),
    (
        "scripts/install.sh",
        include_str!("scaffold/taskserv/scripts/install.sh"),
        false,
    ),
    (
        "scripts/configure.sh",
        include_str!("scaffold/taskserv/scripts/configure.sh"),
        false,
    ),
    (
        "scripts/upgrade.sh",
        include_str!("scaffold/taskserv/scripts/upgrade.sh"),
        false,
    ),
    (
        "scripts/status.sh",
        include_str!("scaffold/taskserv/scripts/status.sh"),
        false,
    ),
    (
        "scripts/version.sh",
        include_str!("scaffold/taskserv/scripts/version.sh"),
        false,
    ),
    (
        "scripts/uninstall.sh",
        include_str!("scaffold/taskserv/scripts/uninstall.sh"),
        false,
    ),
    (
        "tests/unit.toml",
        include_str!("scaffold/taskserv/tests/unit.toml"),
        false,
    ),
    (
        "tests/expected/@NAME@.conf",
        include_str!("scaffold/taskserv/tests/expected/@NAME@.conf"),
        false,
    ),
    (
        "tests/integration.toml",
        include_str!("scaffold/taskserv/tests/integration.toml"),
        false,
    ),
];

const CLUSTER: &[(&str, &str, bool)] = &[
    (
        "manifest.toml",
        include_str!("scaffold/cluster/manifest.toml"),
        false,
    ),
    (
        "schemas/cluster.ncl",
        include_str!("scaffold/cluster/schemas/cluster.ncl"),
        false,
    ),
    (
        "components/app/schemas/settings.ncl",
        include_str!("scaffold/cluster/components/app/schemas/settings.ncl"),
        false,
    ),
    (
        "components/app/templates/app.conf.j2",
        include_str!("scaffold/cluster/components/app/templates/app.conf.j2"),
        false,
    ),
    (
        "components/app/scripts/lib.sh",
        include_str!("scaffold/cluster/components/app/scripts/lib.sh"),
        false,
    ),
    (
        "components/app/scripts/deploy.sh",
        include_str!("scaffold/cluster/components/app/scripts/deploy.sh"),
        false,
    ),
    (
        "components/app/scripts/configure.sh",
        include_str!("scaffold/cluster/components/app/scripts/configure.sh"),
        false,
    ),
    (
        "components/app/scripts/upgrade.sh",
        include_str!("scaffold/cluster/components/app/scripts/upgrade.sh"),
        false,
    ),
    (
        "components/app/scripts/status.sh",
        include_str!("scaffold/cluster/components/app/scripts/status.sh"),
        false,
    ),
    (
        "components/app/scripts/version.sh",
        include_str!("scaffold/cluster/components/app/scripts/version.sh"),
        false,
    ),
    (
        "components/app/scripts/remove.sh",
        include_str!("scaffold/cluster/components/app/scripts/remove.sh"),
        false,
    ),
    (
        "tests/unit.toml",
        include_str!("scaffold/cluster/tests/unit.toml"),
        false,
    ),
    (
        "tests/expected/app.conf",
        include_str!("scaffold/cluster/tests/expected/app.conf"),
        false,
    ),
    (
        "tests/integration.toml",
        include_str!("scaffold/cluster/tests/integration.toml"),
        false,
    ),
];

const PROVIDER: &[(&str, &str, bool)] = &[
    (
        "manifest.toml",
        include_str!("scaffold/provider/manifest.toml"),
        false,
    ),
    (
        "schemas/settings.ncl",
        include_str!("scaffold/provider/schemas/settings.ncl"),
        false,
    ),
    (
        "tests/unit.toml",
        include_str!("scaffold/provider/tests/unit.toml"),
        false,
    ),
    (
        "tests/integration.toml",
        include_str!("scaffold/provider/tests/integration.toml"),
        false,
    ),
];

/// What the documents say per kind: (summary, usage, configuration, API reference, examples).
fn texts(kind: ExtensionKind) -> [&'static str; 5] {
    match kind {
        ExtensionKind::Taskserv => [
            "A taskserv: a long-running shell service installed on a server, with a configuration file rendered from its settings and a health check (the beat file must be written).",
            "```nickel\nservers.web = {\n  provider = \"local\",\n  taskservs = { @NAME@ = { version = \"1.1.0\", settings = { interval = 2, message = \"hi\" } } },\n}\n```",
            "`settings` (schemas/settings.ncl):\n\n| field | type | default | meaning |\n|---|---|---|---|\n| `interval` | positive integer | 5 | seconds between heartbeats |\n| `message` | string | \"hello\" | written with every heartbeat |\n\nVersions (schemas/version.ncl): 1.0.0, 1.1.0.",
            "The seed's taskserv operations, as scripts run on the server (docs/taskservs.md):\n\n| operation | script |\n|---|---|\n| install | scripts/install.sh |\n| uninstall | scripts/uninstall.sh |\n| configure | scripts/configure.sh |\n| status | scripts/status.sh (exit 0 running, 3 stopped, 4 not installed; prints version=) |\n| restart | scripts/configure.sh |\n| upgrade | scripts/upgrade.sh |\n| get-current-version | scripts/version.sh |\n| get-available-versions | schemas/version.ncl |\n\nOutputs: `config` (the configuration file's path), referable as `${taskserv.SERVER.@NAME@.config}`.",
            "## A taskserv on a local server\n\n```nickel\n{\n  providers.local = { isolation = \"none\", defaults = { plan = \"small\", zone = \"local\" } },\n  servers.app = { provider = \"local\", taskservs.@NAME@.settings.message = \"hello\" },\n}\n```\n\n```sh\nprov apply --auto-approve\nprov taskserv status\n```\n\n## Upgrading\n\nSet `version = \"1.1.0\"` and apply: the plan says `will be upgraded`.\n",
        ],
        ExtensionKind::Cluster => [
            "A cluster of one application component, `app`: a shell service per replica, one replica per server, with a health check.",
            "```nickel\nclusters.@NAME@ = {\n  servers = [\"a\", \"b\"],\n  components = [{ name = \"app\", type = 'application, version = \"1.0.0\", resources.replicas = 2 }],\n}\n```",
            "The cluster (schemas/cluster.ncl, the seed's ClusterConfig and Component): `name`, `version`, `components`, `resources`, `network`, `features`. The `app` component's `config` (components/app/schemas/settings.ncl):\n\n| field | type | default | meaning |\n|---|---|---|---|\n| `interval` | positive integer | 5 | seconds between heartbeats |\n| `message` | string | \"hello\" | written with every heartbeat |",
            "The seed's cluster operations (docs/clusters.md): create, delete, status, scale (`resources.replicas`), upgrade (`version`), list-components, component-status, restart-component. The `app` component's scripts: components/app/scripts/deploy.sh, remove.sh, status.sh, configure.sh, upgrade.sh, version.sh.\n\nOutputs of `app`: `config`.",
            "## Two replicas on two local servers\n\n```nickel\n{\n  providers.local = { isolation = \"none\", defaults = { plan = \"small\", zone = \"local\" } },\n  servers = { a = { provider = \"local\" }, b = { provider = \"local\" } },\n  clusters.@NAME@ = {\n    servers = [\"a\", \"b\"],\n    components = [{ name = \"app\", type = 'application, resources.replicas = 2 }],\n  },\n}\n```\n\n```sh\nprov apply --auto-approve\nprov cluster status @NAME@\n```\n",
        ],
        ExtensionKind::Provider => [
            "An exec provider: a program speaking prov's JSON protocol that keeps its servers in a file of the workspace — a skeleton to replace with calls to a cloud's API.",
            "```nickel\n{\n  providers.@NAME@ = { zones = [\"@NAME@-a\"] },\n  servers.web = { provider = \"@NAME@\", plan = \"small\", zone = \"@NAME@-a\" },\n}\n```",
            "`providers.@NAME@` (schemas/settings.ncl):\n\n| field | type | default | meaning |\n|---|---|---|---|\n| `zones` | list of strings | [\"@NAME@-a\"] | the zones offered |\n| `parallelism` | positive integer | - | calls at once (prov's) |\n| `timeout_secs` | number | 30 | per call (prov's) |\n\nPlans: `small` (1 core, 1 GiB, 5 USD/month), `large` (4 cores, 8 GiB, 40 USD/month).",
            "The seed's provider operations, each one request to the program (docs/exec-protocol.md): info, validate-config, test-connection, create-server, delete-server, list-servers, get-server-info, start-server, stop-server, reboot-server, update-server, get-pricing, get-plans, get-zones, get-ssh-access, configure-firewall.",
            "## A server\n\n```nickel\n{\n  providers.@NAME@ = {},\n  servers.web = { provider = \"@NAME@\", plan = \"small\", zone = \"@NAME@-a\" },\n}\n```\n\n```sh\nprov apply --auto-approve\nprov server info web\nprov server stop web && prov server start web\nprov destroy --auto-approve\n```\n",
        ],
    }
}

/// The files of a new `kind` extension named `name`.
pub fn files(kind: ExtensionKind, name: &str, lang: Lang) -> Vec<File> {
    let own = match kind {
        ExtensionKind::Taskserv => TASKSERV,
        ExtensionKind::Cluster => CLUSTER,
        ExtensionKind::Provider => PROVIDER,
    };
    let [summary, usage, config, api, examples] = texts(kind);
    let command = match lang {
        Lang::Python => "./provider.py",
        Lang::Bash => "./provider.sh",
    };
    let fill = |s: &str| {
        s.replace("@SUMMARY@", summary)
            .replace("@USAGE@", usage)
            .replace("@CONFIG@", config)
            .replace("@API@", api)
            .replace("@KINDS@", kind.dir_name())
            .replace("@KIND@", kind.as_str())
            .replace("@COMMAND@", command)
            .replace("@NAME@", name)
    };
    let mut out: Vec<File> = own
        .iter()
        .map(|(p, c, x)| File {
            path: fill(p),
            contents: fill(c),
            executable: *x,
        })
        .collect();
    if kind == ExtensionKind::Provider {
        let (path, program) = match lang {
            Lang::Python => ("provider.py", include_str!("scaffold/provider/provider.py")),
            Lang::Bash => ("provider.sh", include_str!("scaffold/provider/provider.sh")),
        };
        out.push(File {
            path: path.into(),
            contents: fill(program),
            executable: true,
        });
    }
    for (path, text) in [
        ("README.md", README),
        ("API.md", API),
        ("CHANGELOG.md", CHANGELOG),
    ] {
        out.push(File {
            path: path.into(),
            contents: fill(text),
            executable: false,
        });
    }
    out.push(File {
        path: "EXAMPLES.md".into(),
        contents: fill(&format!("# {name} examples\n\n{examples}")),
        executable: false,
    });
    out
}

/// Writes the skeleton into `dir`, which must not exist yet (nothing is overwritten). Returns
/// the files written.
pub fn write(
    dir: &Path,
    kind: ExtensionKind,
    name: &str,
    lang: Lang,
) -> Result<Vec<PathBuf>, String> {
    crate::model::Name::new(name).map_err(|e| format!("extension name {name:?}: {e}"))?;
    if dir.exists() {
        return Err(format!(
            "{}: already exists; `prov extension new` writes a new directory",
            dir.display()
        ));
    }
    let mut written = Vec::new();
    for f in files(kind, name, lang) {
        let p = dir.join(&f.path);
        let parent = p.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        std::fs::write(&p, &f.contents).map_err(|e| format!("{}: {e}", p.display()))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for kind in ExtensionKind::ALL {
            for lang in [Lang::Python, Lang::Bash] {
                for f in files(kind, "demo-x", lang) {
                    for p in ["@NAME@", "@KIND@", "@KINDS@", "@SUMMARY@", "@COMMAND@"] {
                        assert!(!f.contents.contains(p), "{} has {p}", f.path);
                        assert!(!f.path.contains(p), "{} has {p}", f.path);
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_an_existing_directory_and_a_bad_name() {
        let t = tempfile::tempdir().unwrap();
        let e = write(t.path(), ExtensionKind::Taskserv, "x", Lang::Python).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        let e = write(
            &t.path().join("n"),
            ExtensionKind::Taskserv,
            "Bad Name",
            Lang::Python,
        )
        .unwrap_err();
        assert!(e.contains("Bad Name"), "{e}");
    }
}
