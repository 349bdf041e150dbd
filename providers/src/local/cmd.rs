//! Runs the system tools the local provider drives (`ip`, `nft`, `sshd`, `ssh-keygen`) as
//! subprocesses (through prov-engine's `subprocess`), turning failures into messages that quote
//! the command line and its stderr.

use prov_engine::subprocess::RunError;
use std::collections::BTreeMap;

/// One command line: program, arguments, optional stdin and extra environment.
pub struct Cmd {
    program: String,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: BTreeMap<String, String>,
}

impl Cmd {
    pub fn new(program: &str) -> Cmd {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            stdin: None,
            env: BTreeMap::new(),
        }
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs to completion; `Ok(stdout)` on exit 0, otherwise a message quoting the command,
    /// its exit status and its stderr.
    pub async fn run(&self) -> Result<String, String> {
        let (code, out, err) = self.output().await?;
        if code == Some(0) {
            return Ok(out);
        }
        let status = match code {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".to_string(),
        };
        let detail = if err.is_empty() {
            String::new()
        } else {
            format!(": {err}")
        };
        Err(format!("`{}` failed ({status}){detail}", self.display()))
    }

    /// Runs to completion: `(exit code, stdout, stderr)`. Only a failure to start is an error.
    pub async fn output(&self) -> Result<(Option<i32>, String, String), String> {
        let shown = self.display();
        let mut c = prov_engine::subprocess::Cmd::new(&self.program)
            .args(&self.args)
            .envs(&self.env);
        if let Some(input) = &self.stdin {
            c = c.stdin(input.clone());
        }
        match c.run().await {
            Ok(out) => Ok((
                out.code(),
                out.stdout_text(),
                out.stderr_text().trim().to_string(),
            )),
            Err(RunError::Spawn { source, .. }) => Err(format!(
                "cannot run `{shown}`: {source} (is {} installed and on PATH?)",
                self.program
            )),
            Err(e) => Err(format!("`{shown}`: {e}")),
        }
    }
}
