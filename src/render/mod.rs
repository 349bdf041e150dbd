//! Renderers: plan text, Terraform-shaped JSON, the plan's cost, apply progress; colours only when asked for.

pub mod cost;
pub mod progress;
pub mod reviewed;
pub mod table;
pub mod text;
pub mod tfjson;

/// ANSI colours, or nothing.
#[derive(Clone, Copy)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn green(self, s: &str) -> String {
        self.wrap("32", s)
    }
    pub fn yellow(self, s: &str) -> String {
        self.wrap("33", s)
    }
    pub fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }
    pub fn magenta(self, s: &str) -> String {
        self.wrap("35", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    pub fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// An error message as printed on stderr. Messages that already carry their own `error:`
/// lines (lists of diagnostics, Nickel reports) are printed as they are.
pub fn error_text(msg: &str, color: bool) -> String {
    let p = Paint { on: color };
    if msg.starts_with("error") {
        msg.to_string()
    } else {
        format!("{} {msg}", p.red(&p.bold("error:")))
    }
}
