//! `prov drift`'s findings: every drift narrowed to one attribute, the ignore rule that covers it (expired or not), the counts and the exit code (0 none, 2 drift, 1 errors). The CLI only renders them.

use crate::drift::{rule_for, Drift, DriftKind, IgnoreRule};

/// One reportable finding: a drift narrowed to one attribute where it has several.
pub struct Finding<'a> {
    pub drift: &'a Drift,
    /// The attribute of a change (None for the other kinds).
    pub attribute: Option<String>,
    /// The rule covering it, and whether that rule has expired (an expired rule counts the
    /// finding again).
    pub ignored: Option<(&'a IgnoreRule, bool)>,
}

impl Finding<'_> {
    /// Covered by a rule that has not expired: left out of the counts and the exit code.
    pub fn is_ignored(&self) -> bool {
        matches!(self.ignored, Some((_, false)))
    }

    /// The kind as the report names it.
    pub fn status(&self) -> &'static str {
        match self.drift.kind {
            DriftKind::Gone => "gone",
            DriftKind::Changed(_) => "changed",
            DriftKind::Stopped => "stopped",
            DriftKind::Version { .. } => "version",
            DriftKind::Unmanaged { .. } => "unmanaged",
            DriftKind::Error(_) => "error",
        }
    }

    /// The drift of this finding alone: a change narrowed to its attribute.
    pub fn narrowed(&self) -> Drift {
        match (&self.drift.kind, &self.attribute) {
            (DriftKind::Changed(diffs), Some(a)) => Drift {
                address: self.drift.address.clone(),
                kind: DriftKind::Changed(diffs.iter().filter(|x| &x.path == a).cloned().collect()),
            },
            _ => self.drift.clone(),
        }
    }
}

/// The findings of `drift` (a drift run's) under `rules` on `today` (`YYYY-MM-DD`, UTC).
pub fn findings<'a>(drift: &'a [Drift], rules: &'a [IgnoreRule], today: &str) -> Vec<Finding<'a>> {
    let mut out = Vec::new();
    for d in drift {
        match &d.kind {
            DriftKind::Changed(diffs) => {
                for x in diffs {
                    out.push(Finding {
                        drift: d,
                        attribute: Some(x.path.clone()),
                        ignored: rule_for(rules, d, Some(&x.path), today),
                    })
                }
            }
            _ => out.push(Finding {
                drift: d,
                attribute: None,
                ignored: rule_for(rules, d, None, today),
            }),
        }
    }
    out
}

/// The counts of the findings not ignored, per kind, and of the ignored and expired ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub gone: usize,
    pub changed: usize,
    pub stopped: usize,
    pub version: usize,
    pub unmanaged: usize,
    pub errors: usize,
    pub ignored: usize,
    pub expired: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Summary {
        let mut s = Summary::default();
        for f in findings {
            if f.ignored.is_some_and(|(_, expired)| expired) {
                s.expired += 1;
            }
            if f.is_ignored() {
                s.ignored += 1;
                continue;
            }
            match f.drift.kind {
                DriftKind::Gone => s.gone += 1,
                DriftKind::Changed(_) => s.changed += 1,
                DriftKind::Stopped => s.stopped += 1,
                DriftKind::Version { .. } => s.version += 1,
                DriftKind::Unmanaged { .. } => s.unmanaged += 1,
                DriftKind::Error(_) => s.errors += 1,
            }
        }
        s
    }

    /// Whether anything drifted (errors aside).
    pub fn drifted(&self) -> bool {
        self.gone + self.changed + self.stopped + self.version + self.unmanaged > 0
    }

    /// `prov drift`'s exit code: 1 when a resource could not be checked (an alert), else 2
    /// when something drifted, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 {
            1
        } else if self.drifted() {
            2
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::AttrDiff;

    fn changed(addr: &str, paths: &[&str]) -> Drift {
        Drift {
            address: addr.into(),
            kind: DriftKind::Changed(
                paths
                    .iter()
                    .map(|p| AttrDiff {
                        path: p.to_string(),
                        before: Some("a".into()),
                        after: Some("b".into()),
                        unknown: false,
                        forces_replacement: false,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn changes_are_one_finding_per_attribute_and_rules_expire() {
        let report = vec![
            changed("server.a", &["tags.x", "plan"]),
            Drift {
                address: "server.b".into(),
                kind: DriftKind::Error("timeout".into()),
            },
        ];
        let rules = crate::drift::parse_ignore(
            br#"[{"address": "server.a", "attribute": "tags.x", "reason": "r", "expires": "2027-01-01"}]"#,
            "ig.json",
        )
        .unwrap();
        let before = findings(&report, &rules, "2026-12-06");
        assert_eq!(before.len(), 3);
        assert_eq!(before[0].narrowed(), changed("server.a", &["tags.x"]));
        let s = Summary::of(&before);
        assert_eq!((s.changed, s.ignored, s.expired, s.errors), (1, 1, 0, 1));
        assert_eq!(s.exit_code(), 1);
        let after = findings(&report, &rules, "2027-01-02");
        let s = Summary::of(&after);
        assert_eq!((s.changed, s.ignored, s.expired), (2, 0, 1));
        let only_drift = vec![changed("server.a", &["tags.x"])];
        assert_eq!(
            Summary::of(&findings(&only_drift, &rules, "2026-12-06")).exit_code(),
            0
        );
        assert_eq!(
            Summary::of(&findings(&only_drift, &[], "2026-12-06")).exit_code(),
            2
        );
    }
}
