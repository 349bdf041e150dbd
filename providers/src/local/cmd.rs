//! Runs the system tools the local provider drives (`ip`, `nft`, `sshd`, `ssh-keygen`) as
//! subprocesses, turning failures into messages that quote the command line and its stderr.

use std::collections::BTreeMap;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

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
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .envs(&self.env)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().map_err(|e| {
            format!(
                "cannot run `{shown}`: {e} (is {} installed and on PATH?)",
                self.program
            )
        })?;
        if let (Some(input), Some(mut pipe)) = (self.stdin.as_ref(), child.stdin.take()) {
            pipe.write_all(input)
                .await
                .map_err(|e| format!("`{shown}`: cannot write its input: {e}"))?;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("`{shown}`: {e}"))?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}
