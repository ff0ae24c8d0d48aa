//! How the copies of the published files are faring: the static directory
//! and the S3 bucket each have a state that `/readyz` and `/metrics` show.
//! A failing copy never makes the daemon unready (the daemon still serves
//! every page itself); it is a warning an operator must see.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::sync::lock;

/// Where a copy of the files is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `[publish] dir`.
    Dir,
    /// `[publish.s3]`.
    S3,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Dir => "dir",
            Target::S3 => "s3",
        }
    }
}

/// One target's state after its last attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetState {
    pub ok: bool,
    /// When every file was last in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// The first failure of the current run of failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Failed attempts in a row.
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct PublishStatus {
    targets: Mutex<BTreeMap<Target, TargetState>>,
}

impl PublishStatus {
    /// A target is configured: reported (as not yet written) from now on.
    pub fn expect(&self, target: Target) {
        lock(&self.targets).entry(target).or_default();
    }

    pub fn succeeded(&self, target: Target, at: DateTime<Utc>) {
        lock(&self.targets).insert(
            target,
            TargetState {
                ok: true,
                last_success: Some(at),
                ..TargetState::default()
            },
        );
    }

    pub fn failed(&self, target: Target, at: DateTime<Utc>, error: String) {
        let mut targets = lock(&self.targets);
        let state = targets.entry(target).or_default();
        state.ok = false;
        state.failing_since.get_or_insert(at);
        state.failures = state.failures.saturating_add(1);
        state.error = Some(error);
    }

    pub fn snapshot(&self) -> BTreeMap<Target, TargetState> {
        lock(&self.targets).clone()
    }
}

/// One sentence per failing target of a snapshot, for `/readyz`'s
/// warnings. `/readyz` shows the snapshot beside them, so both must come
/// from one read (a copy succeeding between two reads once showed `ok`
/// beside its old failure).
pub fn warnings(snapshot: &BTreeMap<Target, TargetState>) -> Vec<String> {
    snapshot
        .iter()
        .filter(|(_, state)| !state.ok)
        .map(
            |(target, state)| match (&state.error, state.failing_since) {
                (Some(error), Some(since)) => format!(
                    "publish {}: {} failed attempts since {}: {error}",
                    target.name(),
                    state.failures,
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                _ => format!("publish {}: not written yet", target.name()),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn failures_count_up_from_the_first_and_a_success_clears_them() {
        let status = PublishStatus::default();
        status.expect(Target::S3);
        assert_eq!(
            warnings(&status.snapshot()),
            ["publish s3: not written yet"]
        );
        let first = Utc.with_ymd_and_hms(2026, 12, 2, 5, 0, 0).unwrap();
        status.failed(Target::S3, first, "connection refused".into());
        status.failed(
            Target::S3,
            first + chrono::TimeDelta::seconds(2),
            "timed out".into(),
        );
        assert_eq!(
            warnings(&status.snapshot()),
            ["publish s3: 2 failed attempts since 2026-12-02T05:00:00Z: timed out"]
        );
        status.succeeded(Target::S3, first + chrono::TimeDelta::seconds(5));
        assert!(warnings(&status.snapshot()).is_empty());
        assert_eq!(status.snapshot()[&Target::S3].failures, 0);
    }
}
