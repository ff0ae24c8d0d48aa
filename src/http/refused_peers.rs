//! Peers that keep posting webhooks crisisd refuses before it knows who
//! sent them (a made-up hook name, a bad signature or token). Each such
//! refusal is already cheap (a counter, a throttled log line, no store
//! write), but reading a body of up to 1 MiB and checking it thousands of
//! times a second still takes a core from the fan-out. So a peer with too
//! many refusals in a row is answered 429 before its body is read, until
//! its quota (governor's keyed limiter) allows another try. Only
//! refusals count: a busy Alertmanager whose posts are accepted is never
//! slowed down, and a sender whose secret was fixed is let through within
//! a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::console::session::peer;
use super::error::ApiError;

/// Refusals a peer may have at once, then one more every `REFILL`.
const BURST: u32 = 30;
const REFILL: Duration = Duration::from_secs(1);
/// Peers remembered before those whose quota is whole again are forgotten.
const TIDY_ABOVE: usize = 10_000;

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

pub struct RefusedPeers {
    refusals: Keyed,
    /// Peers over their quota, and until when.
    barred: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
}

impl Default for RefusedPeers {
    fn default() -> Self {
        Self::new(BURST, REFILL)
    }
}

impl RefusedPeers {
    pub fn new(burst: u32, refill: Duration) -> Self {
        let quota = Quota::with_period(refill)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            refusals: RateLimiter::keyed(quota),
            barred: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// How long this peer must still wait, if it is barred.
    pub fn barred_for(&self, peer: IpAddr) -> Option<Duration> {
        let mut barred = self.barred.lock().unwrap_or_else(|p| p.into_inner());
        let until = *barred.get(&peer)?;
        let now = Instant::now();
        if until > now {
            return Some(until - now);
        }
        barred.remove(&peer);
        None
    }

    /// Counts one refusal; one too many bars the peer until its quota
    /// allows the next.
    pub fn refused(&self, peer: IpAddr) {
        if self.refusals.len() > TIDY_ABOVE {
            self.refusals.retain_recent();
        }
        let Err(not_until) = self.refusals.check_key(&peer) else {
            return;
        };
        let wait = not_until.wait_time_from(self.clock.now());
        let mut barred = self.barred.lock().unwrap_or_else(|p| p.into_inner());
        if barred.len() > TIDY_ABOVE {
            let now = Instant::now();
            barred.retain(|_, until| *until > now);
        }
        barred.insert(peer, Instant::now() + wait);
    }
}

/// Whether an answer refused the sender as unknown or unauthenticated.
fn is_refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    )
}

/// The layer on `POST /v1/hooks/{name}`: a barred peer gets 429 with
/// `Retry-After` and its body is never read.
pub async fn guard(
    State(peers): State<Arc<RefusedPeers>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(address) = peer(request.extensions()) else {
        return next.run(request).await;
    };
    if let Some(wait) = peers.barred_for(address) {
        crate::telemetry::webhook_refused("unknown", "rate_limited");
        return too_many(wait);
    }
    let response = next.run(request).await;
    if is_refusal(response.status()) {
        peers.refused(address);
    }
    response
}

fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::TooManyRequests(format!(
        "too many refused webhooks from this address; try again in {seconds} s"
    ))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_barred_after_its_burst_of_refusals_and_others_are_not() {
        let peers = RefusedPeers::new(3, Duration::from_secs(60));
        let flooder = IpAddr::from([192, 0, 2, 1]);
        let other = IpAddr::from([192, 0, 2, 2]);
        for _ in 0..3 {
            peers.refused(flooder);
            assert_eq!(peers.barred_for(flooder), None);
        }
        peers.refused(flooder);
        let wait = peers.barred_for(flooder).expect("barred after the burst");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert_eq!(peers.barred_for(other), None);
    }

    #[test]
    fn a_bar_ends_when_the_quota_allows_the_next_try() {
        let peers = RefusedPeers::new(1, Duration::from_millis(50));
        let flooder = IpAddr::from([192, 0, 2, 1]);
        peers.refused(flooder);
        peers.refused(flooder);
        assert!(peers.barred_for(flooder).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(peers.barred_for(flooder), None);
    }
}
