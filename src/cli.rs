//! Command-line grammar (clap): every subcommand and flag of `prov`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "prov",
    version,
    about = "Declarative plan/apply for servers, taskservs and clusters",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Run as if started in DIR (the workspace directory, holding main.ncl).
    #[arg(short = 'C', long = "chdir", global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// No colours (also when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// State backend: sled (default) or pg; overrides PROV_BACKEND and the configuration's
    /// `backend`. The pg connection string comes from PROV_PG_CONN or `backend.conn`.
    #[arg(long, global = true, value_name = "sled|pg")]
    pub backend: Option<String>,
    /// Stop evaluating the configuration when prov's memory exceeds SIZE (e.g. 512MiB, 8GiB).
    #[arg(long, global = true, value_name = "SIZE", env = "PROV_EVAL_MEMORY_LIMIT",
          default_value = "4GiB", value_parser = parse_size)]
    pub eval_memory_limit: u64,
    /// Stop evaluating the configuration after DURATION (e.g. 30s, 10m).
    #[arg(long, global = true, value_name = "DURATION", env = "PROV_EVAL_TIME_LIMIT",
          default_value = "5m", value_parser = parse_positive_duration)]
    pub eval_time_limit: std::time::Duration,
    /// Encrypt saved plans and state dumps with the key in FILE (relative to the directory prov
    /// was started in); also PROV_ENCRYPTION_KEY (the key itself). Rotation:
    /// PROV_ENCRYPTION_KEY_OLD / PROV_ENCRYPTION_KEY_OLD_FILE still decrypt (docs/encryption.md).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PROV_ENCRYPTION_KEY_FILE"
    )]
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
pub struct LockArgs {
    /// How long to wait for the state lock (e.g. 30s, 2m); 0 fails at once.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Args, Clone, Default)]
pub struct PlanArgs {
    /// Plan to destroy everything in the state.
    #[arg(long)]
    pub destroy: bool,
    /// Limit the plan to this resource and what it depends on (repeatable).
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Replace this resource even if it has not changed (repeatable).
    #[arg(long = "replace", value_name = "ADDR")]
    pub replace: Vec<String>,
    /// Ask the real world before planning: true (the default: every recorded resource), false
    /// (plan against the state as recorded, without any provider call), or changed (only the
    /// resources the plan would change and what they depend on: fast pull-request plans on
    /// large workspaces; drift elsewhere is `prov drift`'s to find).
    #[arg(long, default_value = "true", value_name = "true|false|changed", value_parser = parse_refresh)]
    pub refresh: Refresh,
    /// Only accept the real world into the state: no resource is changed.
    #[arg(long)]
    pub refresh_only: bool,
    /// Read-only queries running at once during refresh.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = parse_count)]
    pub refresh_parallelism: usize,
    /// Fail (exit 1, listing them) if anything would change: a convergence check for CI.
    #[arg(long)]
    pub expect_no_changes: bool,
    /// Adopt live servers whose `prov:address` tag names a server this plan would create and
    /// that no record holds (after a lost state), instead of refusing to duplicate them.
    #[arg(long)]
    pub adopt: bool,
    /// apply: create servers even though live servers tagged for their addresses exist that
    /// no record holds (another workspace's that declare the same addresses).
    #[arg(long)]
    pub ignore_tagged: bool,
    /// Leave the monthly cost out of the plan (no get-pricing calls).
    #[arg(long)]
    pub no_cost: bool,
}

/// What a plan asks the real world about (`--refresh`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refresh {
    /// Every recorded resource.
    #[default]
    All,
    /// Nothing: the state as recorded.
    Off,
    /// What the plan would change and what that depends on.
    Changed,
}

impl Refresh {
    /// Whether anything is asked at all.
    pub fn enabled(self) -> bool {
        self != Refresh::Off
    }
}

/// `--refresh=true|false|changed`.
pub fn parse_refresh(s: &str) -> Result<Refresh, String> {
    match s {
        "true" => Ok(Refresh::All),
        "false" => Ok(Refresh::Off),
        "changed" => Ok(Refresh::Changed),
        other => Err(format!(
            "{other:?}: expected true (every resource), false (none) or changed (what the plan \
             changes and what that depends on)"
        )),
    }
}

/// How a plan is printed (`prov plan`, `prov show PLAN`).
#[derive(Args, Clone, Default)]
pub struct ReportArgs {
    /// text (default), json (Terraform's plan JSON shape), markdown (a pull-request comment:
    /// summary, destroys and replaces first, drift, a Mermaid graph, collapsible diffs) or html
    /// (one self-contained page: filters, search, collapsible diffs, the dependency graph).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<PlanFormat>,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// markdown: stay at or under BYTES (GitHub rejects comments over 65,536 characters); the
    /// summary is kept, then as many resource details as fit, and what was left out is said.
    #[arg(long, value_name = "BYTES", default_value_t = crate::render::markdown::DEFAULT_MAX_BYTES,
          value_parser = parse_max_bytes)]
    pub max_bytes: usize,
    /// markdown: where the full plan is (a URL to a CI artifact or log, or a command), said
    /// when details are left out. Default: the `prov show` command for the saved plan.
    #[arg(long, value_name = "WHERE")]
    pub full_plan: Option<String>,
}

/// The formats a plan is printed in.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
    Html,
}

impl PlanFormat {
    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            PlanFormat::Text => "text",
            PlanFormat::Json => "json",
            PlanFormat::Markdown => "markdown",
            PlanFormat::Html => "html",
        }
    }
}

impl ReportArgs {
    pub fn format(&self) -> PlanFormat {
        if self.json {
            PlanFormat::Json
        } else {
            self.format.unwrap_or(PlanFormat::Text)
        }
    }
}

fn parse_max_bytes(s: &str) -> Result<usize, String> {
    let min = crate::render::markdown::MIN_MAX_BYTES;
    match s.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "invalid --max-bytes {s:?}: expected a number of bytes, at least {min}"
        )),
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Check the configuration: Nickel contracts, addresses, references, cycles, provider settings.
    Validate {
        /// Workspace directory (default: current directory).
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show what apply would change.
    Plan {
        dir: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        /// Save the plan to FILE for `prov apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        report: ReportArgs,
        /// For code nobody has reviewed yet (pull requests): run nothing from the repository
        /// and nothing on servers. Refresh asks provider APIs only (read-only credentials
        /// suffice); taskservs and clusters are planned against their records, and the plan
        /// says so; extension programs are refused; imports must stay inside the workspace;
        /// the state is read without its lock and never written. See docs/ci-security.md.
        #[arg(long)]
        untrusted: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Carry out a plan: a saved plan FILE, or a fresh plan of the workspace DIR.
    Apply {
        /// A saved plan file, or a workspace directory (default: current directory).
        target: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Steps running at once.
        #[arg(long, default_value_t = 10, value_name = "N", value_parser = parse_count)]
        parallelism: usize,
        /// Print progress events as JSON lines.
        #[arg(long)]
        json: bool,
        /// Apply only if the plan does exactly what REVIEWED shows, action for action and
        /// value for value (secrets by keyed hash): REVIEWED is the output of `prov plan
        /// --json` / `prov show --json PLAN`, or a saved plan file. Otherwise the differences
        /// are listed, exit 1, nothing changed. A match is approved by its review (no prompt).
        #[arg(long, value_name = "REVIEWED")]
        expect_plan: Option<PathBuf>,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Destroy everything in the state (a destroy plan, applied).
    Destroy {
        dir: Option<PathBuf>,
        #[arg(long = "target", value_name = "ADDR")]
        targets: Vec<String>,
        #[arg(long)]
        auto_approve: bool,
        /// Steps running at once.
        #[arg(long, default_value_t = 10, value_name = "N", value_parser = parse_count)]
        parallelism: usize,
        #[arg(long)]
        json: bool,
        /// Leave the monthly cost out of the plan (no get-pricing calls).
        #[arg(long)]
        no_cost: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Show a saved plan, or the state when no plan is given.
    Show {
        /// A saved plan file.
        plan: Option<PathBuf>,
        /// Plans: text, json or markdown (see `prov plan --help`); the state: --json.
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Print the resource graph in Graphviz DOT.
    Graph { dir: Option<PathBuf> },
    /// Inspect the state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Print the workspace outputs (resolved at the last apply).
    Output {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Resolve operations an interrupted apply left pending: adopt what was created, clear the rest.
    Refresh {
        dir: Option<PathBuf>,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Adopt an existing server into the state: ADDR must be declared in the configuration.
    Import {
        address: String,
        /// The server's id at its provider.
        id: String,
        #[arg(long = "dir", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Import a server tagged by another workspace or for another address.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Clear a state lock whose holder is gone (sled). PostgreSQL locks end with their session.
    ForceUnlock {
        /// The lock id, as printed in the "state is locked" error.
        lock_id: String,
    },
    /// Report what changed outside prov: read-only, the state is never written. Exit 0 no drift,
    /// 2 drift, 1 error.
    Drift {
        dir: Option<PathBuf>,
        /// JSON report (schema: docs/drift-json.md).
        #[arg(long)]
        json: bool,
        /// Acknowledged drift to leave out: JSON [{"address", "attribute"?, "reason", "expires"?}].
        #[arg(long, value_name = "FILE")]
        ignore: Option<PathBuf>,
        #[arg(long, default_value_t = 32, value_name = "N", value_parser = parse_count)]
        refresh_parallelism: usize,
        /// Time limit per provider call.
        #[arg(long, default_value = "30s", value_parser = parse_positive_duration, value_name = "DURATION")]
        call_timeout: std::time::Duration,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Live servers: list what the providers report, show, start, stop, reboot, ssh.
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
    /// Ask a provider: info, plans, zones, pricing, connection test.
    Provider {
        #[command(subcommand)]
        command: ProviderCommand,
    },
    /// Inspect and edit the simulated world of the `sim` provider (tests and drift demos only).
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Taskservs: the ones available, and status, versions, updates and restarts of the
    /// recorded ones.
    Taskserv {
        #[command(subcommand)]
        command: TaskservCommand,
    },
    /// Clusters: the extensions available, and status and component restarts of the recorded
    /// ones.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Rego policies over plans, with conftest's conventions (no conftest install needed).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Extensions (providers, taskservs, clusters): scaffold, validate, test, register, list
    /// (docs/extensions.md).
    Extension {
        #[command(subcommand)]
        command: ExtensionCommand,
    },
}

/// The kinds of extension.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtKind {
    Provider,
    Taskserv,
    Cluster,
}

impl From<ExtKind> for prov_engine::extension::ExtensionKind {
    fn from(k: ExtKind) -> Self {
        match k {
            ExtKind::Provider => Self::Provider,
            ExtKind::Taskserv => Self::Taskserv,
            ExtKind::Cluster => Self::Cluster,
        }
    }
}

/// The language of a scaffolded exec provider's program.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtLang {
    /// Python 3, standard library only.
    Python,
    /// bash with jq.
    Bash,
}

#[derive(Subcommand)]
pub enum ExtensionCommand {
    /// A working skeleton in the seed's layout: manifest, schemas, templates, scripts (or the
    /// provider program), tests, and README/API/EXAMPLES/CHANGELOG. It passes
    /// `validate --strict` and `test` as it is.
    New {
        #[arg(value_enum)]
        kind: ExtKind,
        name: String,
        /// Where to create it (default: ./NAME); must not exist.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The provider program's language.
        #[arg(long, value_enum, default_value = "python")]
        lang: ExtLang,
    },
    /// The seed's validation rules (structure, schema, interface, dependency, version) plus
    /// documents; exit 1 on an error (with --strict: on a warning too).
    Validate {
        path: PathBuf,
        #[arg(long = "type", value_enum)]
        kind: Option<ExtKind>,
        /// Warnings (missing documents, tests, [compatibility]) fail too.
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the extension's tests: unit (tests/unit.toml: settings cases, templates against
    /// expected files, scripts syntax) and integration (tests/integration.toml: the whole
    /// lifecycle on local servers). Both without a flag. Exit 1 when one fails.
    Test {
        path: PathBuf,
        #[arg(long)]
        unit: bool,
        #[arg(long)]
        integration: bool,
        /// Write a template's rendering into its expected file where they differ (review the
        /// change before committing it).
        #[arg(long)]
        update_expected: bool,
        /// How long one `prov` command of an integration test may run before it is killed
        /// (with what it started) and the step fails.
        #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
        step_timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Validate the extension, then add it to the user's registry
    /// ($XDG_CONFIG_HOME/prov/extensions.toml) or, with --workspace, the workspace's
    /// (extensions.toml, for a team to commit). An invalid extension is refused.
    Register {
        path: PathBuf,
        /// The type it must be (the seed's register-extension(path, type)).
        #[arg(long = "type", value_enum)]
        kind: Option<ExtKind>,
        #[arg(long)]
        workspace: bool,
        /// Refuse warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Remove an extension from the user's registry (or, with --workspace, the workspace's).
    Unregister {
        name: String,
        #[arg(long = "type", value_enum)]
        kind: Option<ExtKind>,
        #[arg(long)]
        workspace: bool,
    },
    /// Every extension this workspace can use, from every source in precedence order: name,
    /// type, version, source, interface version, whether it validates, and which one wins.
    List {
        #[arg(long = "type", value_enum)]
        kind: Option<ExtKind>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Evaluate Rego policies over a plan's Terraform-shaped JSON: rules `deny`, `violation`
    /// (failures) and `warn` (warnings), also with suffixes (`deny_public_ip`); results are
    /// strings or objects with a `msg`. Exit 0 when nothing fails, 1 on failures or an error
    /// (with --fail-on-warn: 1 on warnings, 2 on failures), as `conftest test` exits.
    Check {
        /// A saved plan (`prov plan --out FILE`), plan JSON (`prov plan --json`,
        /// `prov show --json FILE`, `terraform show -json`), or `-` for standard input.
        plan: PathBuf,
        /// Policy file or directory (searched recursively for .rego files; repeatable).
        #[arg(
            short = 'p',
            long = "policy",
            value_name = "PATH",
            default_value = "policy"
        )]
        policy: Vec<PathBuf>,
        /// Data file or directory (.json/.yaml/.yml) loaded as `data` (repeatable); the policy
        /// paths are always searched for data files too.
        #[arg(short = 'd', long = "data", value_name = "PATH")]
        data: Vec<PathBuf>,
        /// Package whose rules are checked (repeatable; default `main`).
        #[arg(short = 'n', long = "namespace", value_name = "NAME")]
        namespace: Vec<String>,
        /// Check the rules of every package the policies declare.
        #[arg(long, conflicts_with = "namespace")]
        all_namespaces: bool,
        /// Exit 1 on warnings too (and 2 on failures).
        #[arg(long)]
        fail_on_warn: bool,
        /// Rego syntax of the policies: v1 (OPA 1.x, conftest's default) or v0.
        #[arg(long, value_name = "v0|v1", default_value = "v1", value_parser = ["v0", "v1"])]
        rego_version: String,
        /// Results as JSON (conftest's `--output json` shape, one entry per namespace).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// The cluster extensions this workspace can use: the built-in catalog and extension
    /// directories.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Status of recorded clusters and their components (the implementation's status,
    /// list-components and component-status); exit 1 when something is not running.
    Status {
        /// A cluster name (or cluster.NAME); default all.
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Restart one component of a recorded cluster (restart-component, health gates included);
    /// the state is not changed.
    Restart {
        name: String,
        component: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
}

#[derive(Subcommand)]
pub enum TaskservCommand {
    /// The taskservs this workspace can use: the built-in catalog and extension directories.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Installed, running, version and health of recorded taskservs (exit 1 if a query failed).
    Status {
        /// An address (taskserv.SERVER.NAME), a taskserv name or a server name; default all.
        filter: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// The versions each recorded taskserv's version source offers.
    Versions {
        filter: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Installed version against the newest available (exit 2 with --detailed-exitcode when
    /// an update is available).
    CheckUpdates {
        filter: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Restart recorded taskservs (their health checks must pass); the state is not changed.
    Restart {
        filter: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// List the addresses in the state.
    List {
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Show one resource's record.
    Show {
        address: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Forget resources: remove their records (the real objects are left alone).
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Move a record to another address of the same kind (after a rename in the configuration).
    Mv {
        from: String,
        to: String,
        /// Move to an address the configuration does not declare (the next plan destroys it).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Write the whole state as versioned JSON (stdout, or --out FILE with mode 0600).
    Pull {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Replace the whole state with a pulled file; refuses another lineage or an older serial.
    Push {
        file: PathBuf,
        /// Push even across lineages or over a newer serial.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Earlier versions of a record, newest first.
    History {
        address: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Lift the protection the state keeps for a resource applied with
    /// `lifecycle.prevent_destroy` (it outlives the setting and the resource's block).
    Unprotect {
        address: String,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// Where a live-object command runs: the workspace and how long to wait for the state lock.
#[derive(Args, Clone, Default)]
pub struct LiveArgs {
    /// Workspace directory (default: current directory).
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// One JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Servers every configured provider reports, marked managed (in the state) or not.
    List {
        #[command(flatten)]
        live: LiveArgs,
    },
    /// What the provider reports about a managed server (NAME or server.NAME).
    Info {
        name: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Start a managed server (the state is not changed).
    Start {
        name: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Stop a managed server (the state is not changed; drift and plan see it stopped).
    Stop {
        name: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Reboot a managed server.
    Reboot {
        name: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Open an SSH session (or run CMD) on a managed server with the system `ssh`.
    Ssh {
        name: String,
        /// `ssh` ConnectTimeout in seconds.
        #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
        connect_timeout: u32,
        /// Print the ssh command line instead of running it.
        #[arg(long)]
        print: bool,
        /// Workspace directory (default: current directory).
        #[arg(long = "dir", value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        lock: LockArgs,
        /// Command to run remotely (after `--`).
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Name, version, supported operations, OS and regions.
    Info {
        provider: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Server plans (sizes) the provider offers.
    Plans {
        provider: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Zones the provider offers.
    Zones {
        provider: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Prices per plan.
    Pricing {
        provider: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Check that the provider answers with the workspace's settings (exit 1 when it does not).
    Test {
        provider: String,
        #[command(flatten)]
        live: LiveArgs,
    },
}

#[derive(Subcommand)]
pub enum SimCommand {
    /// List the simulated servers.
    List,
    /// Delete a server outside prov.
    Delete { server: String },
    /// Set an attribute of a server outside prov (VALUE is JSON, or a plain string).
    Set {
        server: String,
        key: String,
        value: String,
    },
    /// Add a server prov does not manage, carrying this workspace's ownership tag.
    AddUnmanaged { hostname: String },
    /// Stop a taskserv outside prov.
    StopTaskserv { server: String, name: String },
    /// Change an installed taskserv's version outside prov.
    TaskservVersion {
        server: String,
        name: String,
        #[arg(value_name = "VERSION")]
        new_version: String,
    },
}

/// Parses `30s`, `2m`, `1h`, `500ms` or a plain number of seconds (0 up to 10 years).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    prov_state::parse_duration(s)
}

/// [`parse_duration`], but zero is refused: a time limit of nothing fails everything.
pub fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("invalid duration {s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

/// The most steps or queries a `--*parallelism` flag may run at once.
const MAX_COUNT: usize = 10_000;

/// A number of things at once: 1 up to 10,000 (0 would do nothing, or was silently 1).
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid number {s:?}: expected a whole number from 1 to {MAX_COUNT}"
        )),
    }
}

/// Parses a memory size: `512MiB`, `8GiB`, `300M`, `2G`, `1048576` (bytes); units are binary
/// (K, M, G, T with or without `iB`/`B`). At least 64 MiB: prov itself needs ~30 MiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected e.g. 512MiB, 8GiB (or a number of bytes)")
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let bytes = n * (1u64 << shift) as f64;
    if !(bytes >= (64u64 << 20) as f64 && bytes <= (1u64 << 50) as f64) {
        return Err(format!(
            "invalid size {s:?}: must be between 64MiB and 1024TiB"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn durations_sizes_and_counts_refuse_nonsense_without_panicking() {
        use super::{parse_count, parse_duration, parse_positive_duration, parse_size};
        assert_eq!(
            parse_duration("1.5m"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(parse_duration("0"), Ok(std::time::Duration::ZERO));
        for bad in [
            "99999999999999999999h",
            "1e400",
            "87601h",
            "-1s",
            "inf",
            "NaN",
            "",
            "1.2.3s",
            "5d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_count("16"), Ok(16));
        for bad in ["0", "-1", "10001", "18446744073709551616", "x", ""] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        for bad in [
            "0",
            "1MiB",
            "99999999999999999999GiB",
            "5 parsecs",
            "",
            "-1G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    /// clap checks the whole command tree in debug builds on every parse; check it here first.
    #[test]
    fn command_line_grammar_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
