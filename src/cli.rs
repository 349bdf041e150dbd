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
    /// Ask the real world before planning (default true; `--refresh=false` plans against the
    /// state as recorded, without any provider call).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub refresh: bool,
    /// Only accept the real world into the state: no resource is changed.
    #[arg(long)]
    pub refresh_only: bool,
    /// Read-only queries running at once during refresh.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub refresh_parallelism: usize,
    /// Fail (exit 1, listing them) if anything would change: a convergence check for CI.
    #[arg(long)]
    pub expect_no_changes: bool,
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
        /// Print the plan as JSON (Terraform's plan JSON shape).
        #[arg(long)]
        json: bool,
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
        #[arg(long, default_value_t = 10)]
        parallelism: usize,
        /// Print progress events as JSON lines.
        #[arg(long)]
        json: bool,
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
        #[arg(long, default_value_t = 10)]
        parallelism: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Show a saved plan, or the state when no plan is given.
    Show {
        /// A saved plan file.
        plan: Option<PathBuf>,
        /// Terraform-shaped JSON (`terraform show -json`).
        #[arg(long)]
        json: bool,
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
        #[arg(long, default_value_t = 32, value_name = "N")]
        refresh_parallelism: usize,
        /// Time limit per provider call.
        #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
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
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
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

/// Parses `30s`, `2m`, `1h`, `500ms` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {unit:?} (ms, s, m, h)"
            ))
        }
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the whole command tree in debug builds on every parse; check it here first.
    #[test]
    fn command_line_grammar_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
