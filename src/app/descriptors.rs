//! File descriptors: each HTTP connection holds one, and so do the store,
//! the SMTP pool, provider connections and the files the daemon reads. A
//! soft limit of 1024 (the usual default outside systemd units that set
//! `LimitNOFILE=`) would be reached by a thousand idle connections.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// Raises the soft descriptor limit to the hard one, which any process may
/// do, and returns the soft limit in force (`None`: unlimited or unknown).
pub fn raise_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        return None;
    };
    if hard.is_some_and(|hard| hard <= soft) {
        return Some(soft);
    }
    let raised = Rlimit {
        current: hard,
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            info!(from = soft, to = ?hard, "Raised the open-file limit to its hard limit.");
            hard
        }
        Err(err) => {
            warn!(error = %err, soft, "Cannot raise the open-file limit; set LimitNOFILE= in the unit.");
            Some(soft)
        }
    }
}

/// `configured` connections, or fewer when the descriptor limit would not
/// leave room for everything else (a quarter of it, at least 64).
pub fn fit_connections(configured: usize, soft_limit: Option<u64>) -> usize {
    let Some(soft) = soft_limit.and_then(|s| usize::try_from(s).ok()) else {
        return configured;
    };
    let room = soft.saturating_sub((soft / 4).max(64)).max(1);
    if configured > room {
        warn!(
            configured,
            allowed = room,
            open_files = soft,
            "server.max_connections is more than the open-file limit leaves room for; lowered."
        );
        return room;
    }
    configured
}

#[cfg(test)]
mod tests {
    use super::fit_connections;

    #[test]
    fn connections_leave_room_for_other_descriptors() {
        assert_eq!(fit_connections(4096, Some(1024)), 768);
        assert_eq!(fit_connections(4096, Some(256)), 192);
        assert_eq!(fit_connections(4096, Some(65536)), 4096);
        assert_eq!(fit_connections(4096, None), 4096);
        assert_eq!(fit_connections(10, Some(20)), 1);
    }
}
