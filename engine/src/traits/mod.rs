//! The extension traits the engine drives (providers, taskservs, clusters) and their typed requests and responses.

pub mod cluster;
pub mod provider;
pub mod taskserv;
pub mod transport;

pub use cluster::*;
pub use provider::*;
pub use taskserv::*;
pub use transport::*;

/// An error from an extension: which implementation, which operation, on what, and why.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{implementation}: {operation}{}: {message}", target.as_ref().map(|t| format!(" {t}")).unwrap_or_default())]
pub struct ExtError {
    pub implementation: String,
    pub operation: String,
    pub target: Option<String>,
    pub kind: ErrorKind,
    pub message: String,
}

/// Broad classes of extension failures, so the engine can decide (e.g. a delete of something
/// already gone succeeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Auth,
    Throttled,
    Timeout,
    Invalid,
    Unsupported,
    Failed,
}

impl ExtError {
    pub fn new(
        implementation: &str,
        operation: &str,
        target: Option<&str>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> ExtError {
        ExtError {
            implementation: implementation.to_string(),
            operation: operation.to_string(),
            target: target.map(str::to_string),
            kind,
            message: message.into(),
        }
    }
}

pub type ExtResult<T> = Result<T, ExtError>;

/// The seed's `validate-config` answer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Validation {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Other taskservs this one needs on the same server, at versions within a semver
    /// requirement (a taskserv's `schemas/version.ncl` `dependencies`): the engine checks them
    /// against what the configuration pins, since one implementation cannot see its siblings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<VersionNeed>,
}

/// "Needs taskserv `name` at a version matching `version`", declared in `declared_in`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VersionNeed {
    pub name: String,
    /// A semver requirement, e.g. `>=1.7`.
    pub version: String,
    /// Where the need is written (a file), for the error message.
    pub declared_in: String,
}

impl Validation {
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}
