//! The environment the sim implementations read: latency and failure injection for every
//! process a test or benchmark starts, without touching its configuration.
//!
//! | variable                  | read by  | meaning                                                  |
//! |---------------------------|----------|----------------------------------------------------------|
//! | `PROV_SIM_LATENCY_MS`     | all      | every call sleeps this long (0 to 86400000; the provider's `latency_ms` setting wins) |
//! | `PROV_SIM_READ_BATCH`     | provider | servers one batched read (a page of a listing) answers, 1 to 100000 (default 500; the provider's `read_batch` setting wins) |
//! | `PROV_SIM_FAIL_SERVERS`   | provider | comma-separated hostnames whose create/update/delete fail |
//! | `PROV_SIM_FAIL_TASKSERVS` | taskserv | comma-separated `SERVER/NAME` (SERVER a hostname or id) whose changes fail |
//! | `PROV_SIM_FAIL_CLUSTERS`  | cluster  | comma-separated `CLUSTER` or `CLUSTER/COMPONENT` whose changes fail |
//!
//! Each implementation takes one [`SimEnv`] snapshot when it is built; the parsing is here once.

use std::collections::BTreeSet;
use std::time::Duration;

pub const ENV_LATENCY_MS: &str = "PROV_SIM_LATENCY_MS";
pub const ENV_READ_BATCH: &str = "PROV_SIM_READ_BATCH";
pub const ENV_FAIL_SERVERS: &str = "PROV_SIM_FAIL_SERVERS";
pub const ENV_FAIL_TASKSERVS: &str = "PROV_SIM_FAIL_TASKSERVS";
pub const ENV_FAIL_CLUSTERS: &str = "PROV_SIM_FAIL_CLUSTERS";

/// The raw values of the variables (passed around, so parsing is pure and testable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimEnv {
    pub latency_ms: Option<String>,
    pub read_batch: Option<String>,
    pub fail_servers: Option<String>,
    pub fail_taskservs: Option<String>,
    pub fail_clusters: Option<String>,
}

impl SimEnv {
    /// The variables as this process sees them now.
    pub fn from_process() -> SimEnv {
        let var = |k: &str| std::env::var(k).ok();
        SimEnv {
            latency_ms: var(ENV_LATENCY_MS),
            read_batch: var(ENV_READ_BATCH),
            fail_servers: var(ENV_FAIL_SERVERS),
            fail_taskservs: var(ENV_FAIL_TASKSERVS),
            fail_clusters: var(ENV_FAIL_CLUSTERS),
        }
    }

    /// `PROV_SIM_LATENCY_MS` as a duration; `Ok(None)` when unset, an error naming the variable
    /// when it is not a number of milliseconds in range.
    pub fn latency(&self) -> Result<Option<Duration>, String> {
        let Some(raw) = &self.latency_ms else {
            return Ok(None);
        };
        match raw.trim().parse::<f64>().ok().and_then(latency_from_ms) {
            Some(d) => Ok(Some(d)),
            None => Err(format!(
                "{ENV_LATENCY_MS} must be a number of milliseconds from 0 to 86400000, got {raw:?}"
            )),
        }
    }

    /// `PROV_SIM_READ_BATCH`: `Ok(None)` when unset, an error naming the variable when it is not
    /// a whole number from 1 to [`MAX_READ_BATCH`].
    pub fn read_batch(&self) -> Result<Option<usize>, String> {
        let Some(raw) = &self.read_batch else {
            return Ok(None);
        };
        match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_READ_BATCH).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{ENV_READ_BATCH} must be a whole number of servers from 1 to {MAX_READ_BATCH}, got {raw:?}"
            )),
        }
    }

    /// The hostnames of `PROV_SIM_FAIL_SERVERS`.
    pub fn fail_servers(&self) -> BTreeSet<String> {
        split_list(self.fail_servers.as_deref())
    }

    /// The `SERVER/NAME` entries of `PROV_SIM_FAIL_TASKSERVS`.
    pub fn fail_taskservs(&self) -> BTreeSet<String> {
        split_list(self.fail_taskservs.as_deref())
    }

    /// The `CLUSTER` and `CLUSTER/COMPONENT` entries of `PROV_SIM_FAIL_CLUSTERS`.
    pub fn fail_clusters(&self) -> BTreeSet<String> {
        split_list(self.fail_clusters.as_deref())
    }
}

/// The largest page a batched read may ask for (a listing API's page limit).
pub const MAX_READ_BATCH: usize = 100_000;

/// A latency of at most a day (a larger one would overflow the deadlines built from it).
pub fn latency_from_ms(ms: f64) -> Option<Duration> {
    (ms.is_finite() && (0.0..=86_400_000.0).contains(&ms))
        .then(|| Duration::from_secs_f64(ms / 1000.0))
}

/// The entries of a comma-separated list, blanks dropped.
pub fn split_list(raw: Option<&str>) -> BTreeSet<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_optional_bounded_and_named_when_wrong() {
        assert_eq!(SimEnv::default().latency(), Ok(None));
        let env = |v: &str| SimEnv {
            latency_ms: Some(v.into()),
            ..SimEnv::default()
        };
        assert_eq!(env(" 7 ").latency(), Ok(Some(Duration::from_millis(7))));
        assert_eq!(env("0.5").latency(), Ok(Some(Duration::from_micros(500))));
        for bad in ["soon", "-1", "86400001", "NaN", "inf", ""] {
            let e = env(bad).latency().unwrap_err();
            assert!(e.contains(ENV_LATENCY_MS) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn read_batch_is_optional_bounded_and_named_when_wrong() {
        assert_eq!(SimEnv::default().read_batch(), Ok(None));
        let env = |v: &str| SimEnv {
            read_batch: Some(v.into()),
            ..SimEnv::default()
        };
        assert_eq!(env(" 1000 ").read_batch(), Ok(Some(1000)));
        assert_eq!(env("1").read_batch(), Ok(Some(1)));
        for bad in ["0", "-3", "2.5", "100001", "many", ""] {
            let e = env(bad).read_batch().unwrap_err();
            assert!(e.contains(ENV_READ_BATCH) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn fail_lists_split_on_commas_and_drop_blanks() {
        let env = SimEnv {
            fail_servers: Some(" x, ,y ".into()),
            fail_taskservs: Some("web-01/redis,sim-0123/nginx".into()),
            fail_clusters: Some("buildkit/registry, cicd".into()),
            ..SimEnv::default()
        };
        assert_eq!(env.fail_servers(), ["x", "y"].map(String::from).into());
        assert_eq!(env.fail_taskservs().len(), 2);
        assert!(env.fail_clusters().contains("cicd"));
        assert!(SimEnv::default().fail_clusters().is_empty());
    }
}
