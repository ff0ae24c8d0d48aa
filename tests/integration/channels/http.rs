//! The reading every HTTP provider shares, once for all of them: a server
//! error, a timeout, a refused connection and throttling are worth
//! retrying (after `Retry-After`, in seconds or as a date); a refusal is
//! not; no reason repeats a credential; name and concurrency come from the
//! section; a healthcheck posts nothing. Each provider's own rules are in
//! its file.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crisisd::channels::{Channel, ChannelSettings, DeliveryError, build_all};
use futures::future::join_all;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{closed_port, reason, secret_file, text_delivery};

/// One provider, as a section against a loopback server.
struct Provider {
    /// `[[channels.<kind>]]`.
    kind: &'static str,
    /// The section's own keys, for a server at `{base}` and the secret in
    /// the file at `{secret}`.
    section: &'static str,
    /// The secret, for a server at `{base}`.
    secret: &'static str,
    /// Where a delivery is sent.
    path: &'static str,
    /// The healthcheck's request: method and path.
    health: (&'static str, &'static str),
    /// What no reason may contain (for the providers that keep their
    /// credentials out of what they quote).
    hidden: &'static [&'static str],
    /// How it names itself when it reads failures the shared way.
    label: Option<&'static str>,
    /// Refusals it documents (status, body): each is permanent, and its
    /// reason names both.
    refusals: &'static [(u16, &'static str)],
}

const PROVIDERS: &[Provider] = &[
    Provider {
        kind: "twilio",
        section: "account_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
                  auth_token_file = \"{secret}\"\nfrom = \"+15005550006\"\nbase_url = \"{base}\"",
        secret: "auth-token-SECRET",
        path: "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        health: (
            "GET",
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef.json",
        ),
        hidden: &[],
        label: None,
        refusals: &[],
    },
    Provider {
        kind: "vonage",
        section: "api_key = \"key123\"\napi_secret_file = \"{secret}\"\nfrom = \"ExampleCo\"\n\
                  base_url = \"{base}\"",
        secret: "api-SECRET",
        path: "/sms/json",
        health: ("GET", "/account/get-balance"),
        hidden: &[],
        label: Some("Vonage"),
        refusals: &[],
    },
    Provider {
        kind: "sms_gateway",
        section: "url = \"{base}/api/v1/messages\"\n\
                  body = '{\"phone\": {{ to|tojson }}, \"message\": {{ text|tojson }}}'\n\
                  success = { json_pointer = \"/result/state\", equals = \"queued\" }",
        secret: "",
        path: "/api/v1/messages",
        health: ("HEAD", "/"),
        hidden: &[],
        label: Some("sms_gateway-channel"),
        refusals: &[],
    },
    Provider {
        kind: "mastodon",
        section: "instance_url = \"{base}\"\naccess_token_file = \"{secret}\"",
        secret: "mastodon-SECRET",
        path: "/api/v1/statuses",
        health: ("GET", "/api/v1/accounts/verify_credentials"),
        hidden: &[],
        label: None,
        refusals: &[],
    },
    Provider {
        kind: "bluesky",
        section: "service = \"{base}\"\nidentifier = \"crisis.example.com\"\n\
                  app_password_file = \"{secret}\"",
        secret: "abcd-SECRET-mnop",
        path: "/xrpc/com.atproto.repo.createRecord",
        health: ("POST", "/xrpc/com.atproto.server.createSession"),
        hidden: &[],
        label: None,
        refusals: &[],
    },
    Provider {
        kind: "slack",
        section: "webhook_url_file = \"{secret}\"",
        secret: "{base}/services/T0000SECRET/B0000SECRET/XXXXsecretXXXX",
        path: "/services/T0000SECRET/B0000SECRET/XXXXsecretXXXX",
        health: ("HEAD", "/"),
        hidden: &["SECRET"],
        label: Some("Slack"),
        refusals: &[
            (400, "invalid_payload"),
            (400, "no_text"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ],
    },
    Provider {
        kind: "discord",
        section: "webhook_url_file = \"{secret}\"",
        secret: "{base}/api/webhooks/112233445566778899/SECRETtokenSECRET",
        path: "/api/webhooks/112233445566778899/SECRETtokenSECRET",
        health: ("GET", "/api/webhooks/112233445566778899/SECRETtokenSECRET"),
        hidden: &["SECRETtoken"],
        label: None,
        refusals: &[],
    },
    Provider {
        kind: "teams",
        section: "webhook_url_file = \"{secret}\"",
        // A Workflows webhook: the `sig` query parameter is the credential.
        secret: "{base}/workflows/0a1b2c3d/triggers/manual/paths/invoke?\
                 api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETsigSECRET",
        path: "/workflows/0a1b2c3d/triggers/manual/paths/invoke",
        health: ("HEAD", "/"),
        hidden: &[
            "SECRETsig",
            "/workflows/0a1b2c3d/triggers/manual/paths/invoke",
        ],
        label: Some("Teams"),
        refusals: &[
            (400, "Bad payload received by generic incoming webhook."),
            (404, "Webhook Bad Request - Null or empty event"),
            (410, "Connector configuration not found"),
        ],
    },
    Provider {
        kind: "telegram",
        section: "bot_token_file = \"{secret}\"\nchat_id = \"-1001234567890\"\napi_base = \"{base}\"",
        secret: "123456789:AAHsecretTOKENsecret-xyz_0123456789",
        path: "/bot123456789:AAHsecretTOKENsecret-xyz_0123456789/sendMessage",
        health: (
            "GET",
            "/bot123456789:AAHsecretTOKENsecret-xyz_0123456789/getMe",
        ),
        // The token, and the start of its secret half.
        hidden: &["AAHsecret"],
        label: None,
        refusals: &[],
    },
];

/// What one kind of answer must become.
struct Case {
    what: &'static str,
    /// The answer; `echo` quotes the request's URL and the secret, as a
    /// proxy's error page might.
    answer: fn(echo: &str) -> ResponseTemplate,
    expect: Expect,
    /// The reason after `<label> answered ` for providers that read
    /// failures the shared way.
    shared: Option<&'static str>,
}

enum Expect {
    /// Worth retrying, after `wait`; the reason says each of `says`.
    Transient {
        wait: Wait,
        says: &'static [&'static str],
    },
    /// Not worth retrying; the reason says each of `says`.
    Permanent { says: &'static [&'static str] },
}

/// The wait a transient failure names.
#[derive(Debug)]
enum Wait {
    None,
    Exactly(Duration),
    /// An HTTP date two minutes ahead: a little less once it is read.
    AboutTwoMinutes,
}

/// How long the channels here wait for an answer, and longer.
const TIMEOUT: &str = "1s";
const SLOW: Duration = Duration::from_secs(4);

const CASES: &[Case] = &[
    Case {
        what: "a server error",
        answer: |_| ResponseTemplate::new(503).set_body_string("unavailable"),
        expect: Expect::Transient {
            wait: Wait::None,
            says: &["503", "unavailable"],
        },
        shared: Some("503 Service Unavailable: unavailable"),
    },
    Case {
        what: "a proxy's error page that quotes the URL",
        answer: |echo| {
            ResponseTemplate::new(502)
                .set_body_string(format!("<h1>Bad gateway</h1> upstream {echo} failed"))
        },
        expect: Expect::Transient {
            wait: Wait::None,
            says: &["502", "Bad gateway"],
        },
        shared: None,
    },
    Case {
        what: "a request timeout",
        answer: |_| ResponseTemplate::new(408).set_body_string("too slow"),
        expect: Expect::Transient {
            wait: Wait::None,
            says: &["408"],
        },
        shared: None,
    },
    Case {
        what: "throttling with Retry-After in seconds",
        answer: |_| {
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_string("slow down")
        },
        expect: Expect::Transient {
            wait: Wait::Exactly(Duration::from_secs(7)),
            says: &["429", "slow down"],
        },
        shared: Some("429 Too Many Requests: slow down"),
    },
    Case {
        what: "throttling with Retry-After as an HTTP date",
        answer: |_| {
            let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
            ResponseTemplate::new(429)
                .insert_header("Retry-After", later.as_str())
                .set_body_string("slow down")
        },
        expect: Expect::Transient {
            wait: Wait::AboutTwoMinutes,
            says: &["429"],
        },
        shared: None,
    },
    Case {
        what: "throttling with a Retry-After that is neither",
        answer: |_| {
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "soon")
                .set_body_string("slow down")
        },
        expect: Expect::Transient {
            wait: Wait::None,
            says: &["429"],
        },
        shared: None,
    },
    Case {
        what: "a refusal",
        answer: |_| ResponseTemplate::new(400).set_body_string("bad number"),
        expect: Expect::Permanent {
            says: &["400", "bad number"],
        },
        shared: None,
    },
    Case {
        what: "a removed resource",
        answer: |_| ResponseTemplate::new(410).set_body_string("gone for good"),
        expect: Expect::Permanent {
            says: &["410", "gone for good"],
        },
        shared: None,
    },
    Case {
        what: "an answer slower than the timeout",
        answer: |_| ResponseTemplate::new(200).set_delay(SLOW),
        expect: Expect::Transient {
            wait: Wait::None,
            says: &["no answer in time"],
        },
        shared: None,
    },
];

impl Provider {
    fn name(&self) -> String {
        format!("{}-channel", self.kind)
    }

    /// The provider's channel against `base`, configured as a user would,
    /// with a short timeout and a concurrency of 0.
    fn channel(&self, base: &str) -> (Arc<dyn Channel>, tempfile::NamedTempFile) {
        let secret = secret_file(&self.secret.replace("{base}", base));
        let section = self
            .section
            .replace("{base}", base)
            .replace("{secret}", &secret.path().display().to_string());
        let toml = format!(
            "[[{}]]\nname = \"{}\"\nconcurrency = 0\ntimeout = \"{TIMEOUT}\"\n{section}\n",
            self.kind,
            self.name()
        );
        let settings: ChannelSettings = toml::from_str(&toml).expect("section");
        let mut channels = build_all(&settings).expect("channel");
        assert_eq!(channels.len(), 1, "{toml}");
        (channels.remove(0), secret)
    }

    /// A server that lets Bluesky log in (where nothing else calls).
    async fn server(&self) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/xrpc/com.atproto.server.createSession"))
            .respond_with(session())
            .mount(&server)
            .await;
        server
    }

    /// What every case's answer, and every refusal the provider
    /// documents, becomes for this provider.
    async fn answers(&self) {
        for case in CASES {
            let server = self.server().await;
            let echo = format!(
                "{}{} {}",
                server.uri(),
                self.path,
                self.secret.replace("{base}", &server.uri())
            );
            self.check(case, &self.failure(&server, (case.answer)(&echo)).await);
        }
        for (status, body) in self.refusals {
            let server = self.server().await;
            let answer = ResponseTemplate::new(*status).set_body_string(*body);
            let err = self.failure(&server, answer).await;
            let context = format!("{}, {status} {body}: {err:?}", self.kind);
            assert!(matches!(err, DeliveryError::Permanent { .. }), "{context}");
            assert!(reason(&err).contains(body), "{context}");
            assert!(reason(&err).contains(&status.to_string()), "{context}");
        }
    }

    /// How sending one delivery fails when the provider gives `answer`.
    async fn failure(&self, server: &MockServer, answer: ResponseTemplate) -> DeliveryError {
        Mock::given(path(self.path))
            .respond_with(answer)
            .mount(server)
            .await;
        let (channel, _secret) = self.channel(&server.uri());
        channel
            .send(&text_delivery(&self.name(), "+15005550006", "x"))
            .await
            .unwrap_err()
    }

    fn check(&self, case: &Case, err: &DeliveryError) {
        let context = format!("{}, {}: {err:?}", self.kind, case.what);
        let says = match (&case.expect, err) {
            (Expect::Transient { wait, says }, DeliveryError::Transient { retry_after, .. }) => {
                let waits = match wait {
                    Wait::None => retry_after.is_none(),
                    Wait::Exactly(d) => *retry_after == Some(*d),
                    Wait::AboutTwoMinutes => retry_after.is_some_and(|d| {
                        d > Duration::from_secs(100) && d <= Duration::from_secs(120)
                    }),
                };
                assert!(waits, "{context}: expected to wait {wait:?}");
                says
            }
            (Expect::Permanent { says }, DeliveryError::Permanent { .. }) => says,
            _ => panic!("{context}: the wrong kind of failure"),
        };
        for said in *says {
            assert!(reason(err).contains(said), "{context}: should say {said}");
        }
        self.hides_its_secrets(err, &context);
        // The shared reading, to the letter.
        if let (Some(label), Some(shared)) = (self.label, case.shared) {
            assert_eq!(
                reason(err),
                format!("{label} answered {shared}"),
                "{context}"
            );
        }
    }

    fn hides_its_secrets(&self, err: &DeliveryError, context: &str) {
        for hidden in self.hidden {
            assert!(!reason(err).contains(hidden), "{context}: shows {hidden}");
        }
    }
}

/// A Bluesky session; any other provider takes it for a success.
fn session() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "accessJwt": "access-1", "refreshJwt": "refresh-1",
        "handle": "crisis.example.com", "did": "did:plc:u5cwb2mwiv2bfq53cjufe6yn",
    }))
}

#[tokio::test]
async fn every_provider_reads_failed_answers_the_shared_way() {
    join_all(PROVIDERS.iter().map(Provider::answers)).await;
}

#[tokio::test]
async fn a_refused_connection_is_transient_for_sends_and_healthchecks_and_shows_no_secret() {
    let base = closed_port();
    for provider in PROVIDERS {
        let (channel, _secret) = provider.channel(&base);
        let sent = channel
            .send(&text_delivery(&provider.name(), "+15005550006", "x"))
            .await
            .unwrap_err();
        let checked = channel.healthcheck().await.unwrap_err();
        for err in [&sent, &checked] {
            let context = format!("{}: {err:?}", provider.kind);
            assert!(matches!(err, DeliveryError::Transient { .. }), "{context}");
            provider.hides_its_secrets(err, &context);
        }
    }
}

#[tokio::test]
async fn name_and_concurrency_come_from_the_section_and_at_least_one_is_sent_at_once() {
    let base = closed_port();
    for provider in PROVIDERS {
        let (channel, _secret) = provider.channel(&base);
        assert_eq!(channel.name(), provider.name());
        // Configured 0: one at a time is the least that still sends.
        assert_eq!(channel.concurrency(), 1, "{}", provider.kind);
    }
}

#[tokio::test]
async fn a_healthcheck_makes_its_one_harmless_request_and_posts_nothing() {
    for provider in PROVIDERS {
        let server = MockServer::start().await;
        let (verb, health) = provider.health;
        Mock::given(method(verb))
            .and(path(health))
            .respond_with(session())
            .expect(1)
            .mount(&server)
            .await;
        let (channel, _secret) = provider.channel(&server.uri());
        channel.healthcheck().await.expect(provider.kind);
        // That one request and no other: nothing was sent.
        let requests = server.received_requests().await.expect("recorded");
        assert_eq!(requests.len(), 1, "{}: {requests:?}", provider.kind);
        assert_eq!(requests[0].method.as_str(), verb, "{}", provider.kind);
    }
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_up_to_a_cap_and_the_reason_stays_short() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CHUNK: usize = 64 * 1024;
    const OFFERED: usize = 200 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let written = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn({
        let written = written.clone();
        async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\n\
                        Transfer-Encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.expect("head");
            let chunk = format!(
                "{CHUNK:x}\r\n{}\r\n",
                "<p>error</p>".repeat(CHUNK / 12) + &" ".repeat(CHUNK % 12)
            );
            while written.load(Ordering::Relaxed) < OFFERED {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                written.fetch_add(CHUNK, Ordering::Relaxed);
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
    });
    let provider = PROVIDERS
        .iter()
        .find(|p| p.kind == "sms_gateway")
        .expect("the gateway");
    let (channel, _secret) = provider.channel(&base);
    let err = channel
        .send(&text_delivery(&provider.name(), "+15005550006", "x"))
        .await
        .unwrap_err();
    drop(channel);
    let _ = tokio::time::timeout(SLOW, server).await;
    let reason = reason(&err);
    assert!(reason.contains("500"), "{reason}");
    assert!(
        reason.len() < 1024,
        "a short reason: {} bytes",
        reason.len()
    );
    let sent = written.load(Ordering::Relaxed);
    assert!(
        sent < 16 << 20,
        "the body was read past its cap: the server got {sent} bytes out of {OFFERED}"
    );
}
