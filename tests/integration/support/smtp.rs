//! A small SMTP server on loopback for tests: it speaks enough ESMTP for
//! lettre, keeps what it accepted, and can be told to answer DATA with
//! scripted replies (451, 550) or to reject a recipient.
//!
//! Written here rather than taken from a crate because the tests need to
//! script failures per transaction.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
    /// Whether the message came over TLS.
    pub over_tls: bool,
    /// When the server accepted it.
    pub at: std::time::Instant,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("the test SMTP server received a parseable message")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.raw);
        let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| {
                l.split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default()
            })
    }

    pub fn message_id(&self) -> String {
        self.header("Message-ID")
            .expect("every message has a Message-ID")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    accepted: Vec<Received>,
    data_replies: VecDeque<String>,
    /// How long the next DATA transactions are held, in order, before the
    /// default `delay` applies again.
    data_delays: VecDeque<Duration>,
    rejected_recipients: HashMap<String, String>,
    delay: Duration,
    attempts: usize,
    /// When set, AUTH PLAIN is advertised and required, with these
    /// credentials.
    credentials: Option<(String, String)>,
    authenticated_as: Vec<String>,
    acceptor: Option<TlsAcceptor>,
    /// PIPELINING is advertised unless this is set.
    no_pipelining: bool,
    /// MAIL commands that arrived with more commands behind them in the
    /// same read: pipelined transactions.
    pipelined: usize,
    /// Greylisting, as many relays do: the first RCPT of each of these
    /// addresses is answered 451, later ones are accepted.
    greylisting: std::collections::HashSet<String>,
    greylisted: std::collections::HashSet<String>,
}

/// How the test server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    /// Plain, upgraded by STARTTLS.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    task: Arc<JoinHandle<()>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::start_with(addr, TlsMode::None).await
    }

    /// A server speaking TLS as `mode` says, with a certificate for
    /// `localhost` from a fresh CA; returns the CA's PEM for the client.
    pub async fn start_tls(mode: TlsMode) -> (Self, String) {
        let ca = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a certificate");
        let pem = ca.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.signing_key.serialize_der()));
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![ca.cert.der().clone()], key)
        .expect("TLS config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let server = Self::start_with(
            "127.0.0.1:0".parse().expect("addr"),
            match mode {
                TlsMode::None => TlsMode::None,
                _ => mode,
            },
        )
        .await;
        server.state.lock().unwrap().acceptor = Some(acceptor);
        (server, pem)
    }

    async fn start_with(addr: SocketAddr, mode: TlsMode) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the test SMTP server");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let task = {
            let (state, changed) = (state.clone(), changed.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let acceptor = state.lock().unwrap().acceptor.clone();
                    let (state, changed) = (state.clone(), changed.clone());
                    match (mode, acceptor) {
                        (TlsMode::Implicit, Some(acceptor)) => {
                            tokio::spawn(async move {
                                if let Ok(tls) = acceptor.accept(stream).await {
                                    session(Box::new(tls), state, changed, true, None, true).await;
                                }
                            });
                        }
                        (TlsMode::Starttls, acceptor) => {
                            tokio::spawn(session(
                                Box::new(stream),
                                state,
                                changed,
                                true,
                                acceptor,
                                false,
                            ));
                        }
                        _ => {
                            tokio::spawn(session(
                                Box::new(stream),
                                state,
                                changed,
                                true,
                                None,
                                false,
                            ));
                        }
                    }
                }
            })
        };
        Self {
            addr,
            state,
            changed,
            task: Arc::new(task),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next DATA transactions are answered with these replies, in order.
    pub fn script_data_replies(&self, replies: &[&str]) {
        self.state.lock().unwrap().data_replies = replies.iter().map(|r| r.to_string()).collect();
    }

    pub fn reject_recipient(&self, address: &str, reply: &str) {
        self.state
            .lock()
            .unwrap()
            .rejected_recipients
            .insert(address.to_owned(), reply.to_owned());
    }

    /// Accepts `address` again after `reject_recipient`.
    pub fn accept_recipient(&self, address: &str) {
        self.state
            .lock()
            .unwrap()
            .rejected_recipients
            .remove(address);
    }

    /// The next DATA transactions are held this long each, in order, before
    /// their final reply.
    pub fn script_data_delays(&self, delays: &[Duration]) {
        self.state.lock().unwrap().data_delays = delays.iter().copied().collect();
    }

    /// Each accepted message is held this long before the final reply.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Require AUTH PLAIN with these credentials before MAIL FROM.
    pub fn require_auth(&self, username: &str, password: &str) {
        self.state.lock().unwrap().credentials = Some((username.to_owned(), password.to_owned()));
    }

    /// Greylist these addresses: the first RCPT of each is answered 451.
    pub fn greylist<S: ToString>(&self, addresses: impl IntoIterator<Item = S>) {
        self.state
            .lock()
            .unwrap()
            .greylisting
            .extend(addresses.into_iter().map(|a| a.to_string()));
    }

    /// Stop advertising PIPELINING (RFC 2920), as older relays do.
    pub fn disable_pipelining(&self) {
        self.state.lock().unwrap().no_pipelining = true;
    }

    /// Transactions whose MAIL, RCPT and DATA arrived pipelined.
    pub fn pipelined(&self) -> usize {
        self.state.lock().unwrap().pipelined
    }

    /// Usernames that authenticated successfully, one per session.
    pub fn authenticated_as(&self) -> Vec<String> {
        self.state.lock().unwrap().authenticated_as.clone()
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// DATA transactions seen, whatever the reply.
    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }

    /// Waits until at least `n` messages were accepted; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} messages within {timeout:?}, the SMTP server accepted {}",
                    self.accepted().len()
                );
            }
        }
    }
}

/// A plain or TLS stream, boxed so a session can continue on the TLS
/// stream it upgraded to.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One SMTP session on any stream: plain TCP, or TLS after STARTTLS or
/// from the first byte.
fn session(
    stream: Box<dyn Stream>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    greet: bool,
    starttls: Option<TlsAcceptor>,
    secure: bool,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let (read, mut write) = tokio::io::split(stream);
        let mut lines = BufReader::new(read);
        if greet
            && write
                .write_all(b"220 localhost test ESMTP\r\n")
                .await
                .is_err()
        {
            return;
        }
        let mut from = String::new();
        let mut to = Vec::new();
        let mut authenticated = false;
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            let requires_auth = state.lock().unwrap().credentials.is_some();
            let answer = if upper.starts_with("EHLO") {
                let mut ehlo = "250-localhost\r\n250-8BITMIME\r\n".to_owned();
                if !state.lock().unwrap().no_pipelining {
                    ehlo.push_str("250-PIPELINING\r\n");
                }
                if starttls.is_some() && !secure {
                    ehlo.push_str("250-STARTTLS\r\n");
                }
                if requires_auth {
                    ehlo.push_str("250-AUTH PLAIN\r\n");
                }
                ehlo.push_str("250 SMTPUTF8");
                ehlo
            } else if upper == "STARTTLS" && !secure {
                let Some(acceptor) = starttls.clone() else {
                    let _ = write.write_all(b"502 5.5.1 STARTTLS not offered\r\n").await;
                    continue;
                };
                if write
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                // The client waits for the 220 before its handshake, so nothing
                // is buffered: the plain stream can be handed over whole.
                let stream = lines.into_inner().unsplit(write);
                if let Ok(tls) = acceptor.accept(stream).await {
                    session(Box::new(tls), state, changed, false, None, true).await;
                }
                return;
            } else if upper.starts_with("AUTH PLAIN ") {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(command[11..].trim())
                    .unwrap_or_default();
                let parts: Vec<String> = decoded
                    .split(|b| *b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                let mut state = state.lock().unwrap();
                let expected = state.credentials.clone();
                match (expected, parts.as_slice()) {
                    (Some((user, pass)), [_, u, p]) if *u == user && *p == pass => {
                        authenticated = true;
                        state.authenticated_as.push(user);
                        "235 2.7.0 Authentication successful".to_owned()
                    }
                    _ => "535 5.7.8 Authentication credentials invalid".to_owned(),
                }
            } else if upper.starts_with("MAIL FROM:") && requires_auth && !authenticated {
                "530 5.7.0 Authentication required".to_owned()
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                "250 OK".to_owned()
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&command[10..]);
                to.clear();
                if !lines.buffer().is_empty() {
                    state.lock().unwrap().pipelined += 1;
                }
                "250 OK".to_owned()
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = address(&command[8..]);
                let mut state = state.lock().unwrap();
                let first_time =
                    state.greylisting.contains(&rcpt) && state.greylisted.insert(rcpt.clone());
                match state.rejected_recipients.get(&rcpt) {
                    _ if first_time => "451 4.7.1 greylisted, try again later".to_owned(),
                    Some(rejection) => rejection.clone(),
                    None => {
                        to.push(rcpt);
                        "250 OK".to_owned()
                    }
                }
            } else if upper == "DATA" && to.is_empty() {
                "554 5.5.1 no valid recipients".to_owned()
            } else if upper == "DATA" {
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut raw = Vec::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line
                        .strip_prefix('.')
                        .filter(|_| line.starts_with(".."))
                        .unwrap_or(&line);
                    raw.extend_from_slice(unstuffed.as_bytes());
                }
                let (delay, scripted) = {
                    let mut state = state.lock().unwrap();
                    state.attempts += 1;
                    let delay = state.data_delays.pop_front().unwrap_or(state.delay);
                    (delay, state.data_replies.pop_front())
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let answer = scripted.unwrap_or_else(|| "250 2.0.0 OK queued".to_owned());
                if answer.starts_with('2') {
                    state.lock().unwrap().accepted.push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        raw,
                        over_tls: secure,
                        at: std::time::Instant::now(),
                    });
                }
                changed.notify_waiters();
                answer
            } else if upper.starts_with("RSET") {
                from.clear();
                to.clear();
                "250 OK".to_owned()
            } else if upper.starts_with("QUIT") {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                "502 5.5.2 command not recognized".to_owned()
            };
            if write
                .write_all(format!("{answer}\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

fn address(text: &str) -> String {
    text.trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_owned()
}
