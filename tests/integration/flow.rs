//! Flow control: per-channel rate limits, provider back-pressure that
//! pauses one channel and not the others, and the circuit breaker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::sms::{MESSAGES, twilio_section};
use crate::support::{SmtpServer, TestConfig, WAIT, spawn_app_in};

fn readers(n: usize, with_phone: bool) -> String {
    std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..n).map(|i| {
            let phone = if with_phone {
                format!("+1415555{i:04}")
            } else {
                String::new()
            };
            format!("r{i},Reader {i},reader{i}@example.com,{phone},en,UTC\n")
        }))
        .collect()
}

#[tokio::test]
async fn a_channel_limited_to_n_per_second_sends_no_faster() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.audience = readers(12, false);
    config.concurrency = 8;
    config.email_extra = "rate_per_second = 10\nburst = 1\n".into();
    let app = spawn_app_in(config, tempfile::tempdir().expect("dir")).await;
    app.declare("Payments are down").await;

    let messages = smtp.wait_for(12, WAIT).await;
    let first = messages.iter().map(|m| m.at).min().expect("first");
    let last = messages.iter().map(|m| m.at).max().expect("last");
    // Eleven gaps of 100 ms at least, whatever the concurrency.
    let span = last - first;
    assert!(
        span >= Duration::from_millis(1000),
        "12 messages in {span:?} at 10/s"
    );
}

/// Answers like Twilio and writes down when each request came.
fn recording(
    times: Arc<Mutex<Vec<(Instant, u16)>>>,
    answer: impl Fn(usize) -> (u16, ResponseTemplate) + Send + Sync + 'static,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
    move |_: &Request| {
        let mut times = times.lock().unwrap();
        let (status, response) = answer(times.len());
        times.push((Instant::now(), status));
        response
    }
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_that_channel_for_the_time_asked_and_not_the_others() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    let times: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(recording(times.clone(), |n| {
            if n == 0 {
                (
                    429,
                    ResponseTemplate::new(429)
                        .insert_header("Retry-After", "2")
                        .set_body_json(json!({"code": 20429})),
                )
            } else {
                (
                    201,
                    ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})),
                )
            }
        }))
        .mount(&twilio)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = TestConfig::new(smtp.port());
    config.audience = readers(6, true);
    config.extra = twilio_section(&twilio, dir.path(), 3)
        .replace("timeout = \"2s\"", "timeout = \"2s\"\nconcurrency = 1\n");
    let app = spawn_app_in(config, dir).await;
    let started = Instant::now();
    let id = app.declare("Payments are down").await;

    // Email is not held up by the SMS provider's pause.
    smtp.wait_for(6, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "email waited for the SMS pause"
    );
    app.wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 6)
        .await;
    let times = times.lock().unwrap().clone();
    let throttled = times[0];
    assert_eq!(throttled.1, 429);
    let next = times[1].0 - throttled.0;
    assert!(
        next >= Duration::from_millis(1900),
        "the channel resumed after {next:?}, before Retry-After"
    );
    assert!(
        next < Duration::from_secs(6),
        "the channel resumed late: {next:?}"
    );
}

#[tokio::test]
async fn during_an_outage_the_breaker_bounds_attempts_and_everything_is_delivered_after() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    let outage_ends = Instant::now() + Duration::from_millis(2500);
    let down = move || Instant::now() < outage_ends;
    let sends: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(recording(sends.clone(), move |_| {
            if down() {
                (
                    503,
                    ResponseTemplate::new(503).set_body_string("upstream unavailable"),
                )
            } else {
                (
                    201,
                    ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})),
                )
            }
        }))
        .mount(&twilio)
        .await;
    // The healthcheck: the account resource.
    Mock::given(method("GET"))
        .respond_with(move |_: &Request| {
            if down() {
                ResponseTemplate::new(503)
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"sid": "AC"}))
            }
        })
        .mount(&twilio)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = TestConfig::new(smtp.port());
    const READERS: usize = 30;
    config.audience = readers(READERS, true);
    config.max_attempts = 50;
    config.dispatch_extra =
        "breaker_threshold = 3\nbreaker_cooldown = \"200ms\"\nbreaker_max_cooldown = \"400ms\"\n"
            .into();
    config.extra = twilio_section(&twilio, dir.path(), 3)
        .replace("timeout = \"2s\"", "timeout = \"2s\"\nconcurrency = 2\n");
    let app = spawn_app_in(config, dir).await;
    let id = app.declare("Payments are down").await;

    let detail = app
        .wait_until(&id, Duration::from_secs(30), |d| {
            d["deliveries"]["sms"]["sent"] == READERS
        })
        .await;
    assert_eq!(detail["deliveries"]["sms"]["dead"], 0);
    let failed = sends
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, status)| *status == 503)
        .count();
    // Without the breaker, 30 deliveries retried every 100–400 ms for 2.5 s
    // would make well over a hundred attempts. With it: the threshold, the
    // sends in flight when it tripped, and one batch after each passing
    // probe at most.
    assert!(failed <= 12, "{failed} attempts during the outage");
}
