//! SMTP connections for plain and STARTTLS relays, kept open and reused.
//!
//! lettre's own pool opens its sockets without `TCP_NODELAY`, and it writes
//! a message and the closing `CRLF.CRLF` separately: Nagle's algorithm then
//! holds the terminator until the server's delayed ACK, about 40 ms on
//! Linux, for every message on a reused connection (measured with
//! crisisd-bench: 45 ms a message, ~1,100 messages/s at 64 connections).
//! So the socket is opened here, with no-delay, and handed to lettre's
//! `AsyncSmtpConnection`, which still speaks SMTP, STARTTLS and AUTH.
//!
//! The mail transaction is written here too, through that connection's
//! public `command` and `read_response`: with a relay that offers
//! PIPELINING (RFC 2920; Postfix, Exim and the big providers do), MAIL,
//! RCPT and DATA go in one write, and the message and its terminator in
//! another, so a message costs two round trips instead of lettre's four
//! and four packets instead of eight. Bodies come from `mime`, already
//! dot-safe, so they are written as they are.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;

use super::DeliveryError;

/// Idle connections older than this are closed rather than reused: relays
/// drop idle clients after a while, and a dead one costs a failed send.
const MAX_IDLE: Duration = Duration::from_secs(30);

pub struct SmtpPool {
    host: String,
    port: u16,
    timeout: Duration,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    max_idle: usize,
    idle: Mutex<Vec<(Connection, Instant)>>,
}

/// An open session and what its server offers beyond lettre's own list.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

/// Text written to the server exactly as given: several pipelined
/// commands, or a message with its terminating dot.
struct Verbatim<'a>(&'a str, &'a str);

impl std::fmt::Display for Verbatim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        f.write_str(self.1)
    }
}

/// Why a send failed: an SMTP error to classify, or no answer in time.
pub enum PoolError {
    Smtp(lettre::transport::smtp::Error),
    Timeout(&'static str),
    Connect(std::io::Error),
    /// Decided here, before anything is sent; permanent, as the server's
    /// 5xx would be.
    Refused(&'static str),
}

impl PoolError {
    pub fn into_delivery_error(
        self,
        classify: impl Fn(lettre::transport::smtp::Error) -> DeliveryError,
    ) -> DeliveryError {
        match self {
            PoolError::Smtp(err) => classify(err),
            PoolError::Timeout(what) => {
                DeliveryError::transient(format!("SMTP: no answer in time to {what}"))
            }
            PoolError::Connect(err) => {
                DeliveryError::transient(format!("SMTP: cannot connect: {err}"))
            }
            PoolError::Refused(reason) => DeliveryError::permanent(format!("SMTP: {reason}")),
        }
    }
}

impl From<lettre::transport::smtp::Error> for PoolError {
    fn from(err: lettre::transport::smtp::Error) -> Self {
        PoolError::Smtp(err)
    }
}

/// `work`, or a timeout naming `what` was not answered.
async fn within<T, E: Into<PoolError>>(
    timeout: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, PoolError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| PoolError::Timeout(what))?
        .map_err(Into::into)
}

impl SmtpPool {
    pub fn new(
        host: String,
        port: u16,
        timeout: Duration,
        starttls: Option<TlsParameters>,
        credentials: Option<Credentials>,
        max_idle: usize,
    ) -> Self {
        Self {
            host,
            port,
            timeout,
            starttls,
            credentials,
            hello: ClientId::default(),
            max_idle: max_idle.max(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(Connection, Instant)>> {
        crate::sync::lock(&self.idle)
    }

    async fn connect(&self) -> Result<Connection, PoolError> {
        let stream = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| PoolError::Timeout("connect"))?
        .map_err(PoolError::Connect)?;
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        let mut smtp = within(
            self.timeout,
            "greet",
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await?;
        if let Some(tls) = &self.starttls {
            within(
                self.timeout,
                "start TLS",
                smtp.starttls(tls.clone(), &self.hello),
            )
            .await?;
        }
        // lettre keeps only the extensions it uses; ask again for the rest.
        // Before AUTH: EHLO starts the session over.
        let extensions = within(
            self.timeout,
            "say EHLO",
            smtp.command(Ehlo::new(self.hello.clone())),
        )
        .await?;
        let pipelining = extensions
            .message()
            .any(|line| line.split_whitespace().next() == Some("PIPELINING"));
        if let Some(credentials) = &self.credentials {
            within(
                self.timeout,
                "authenticate",
                smtp.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await?;
        }
        Ok(Connection { smtp, pipelining })
    }

    /// A reusable idle connection, if one is fresh enough.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle();
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !connection.smtp.has_broken() {
                return Some(connection);
            }
        }
        None
    }

    fn give_back(&self, connection: Connection) {
        if connection.smtp.has_broken() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push((connection, Instant::now()));
        }
    }

    /// Sends `message` (CRLF line ends, dot-safe, as `mime` makes it).
    pub async fn send(&self, envelope: &Envelope, message: String) -> Result<Response, PoolError> {
        let mut message = message;
        if !message.ends_with("\r\n") {
            message.push_str("\r\n");
        }
        // A reused connection the server has closed fails without an SMTP
        // reply: then the message goes once more, on a new connection, but
        // only if its text was not written yet. Once it was, the server may
        // have it (a reply lost or late, a timeout): sending it again here
        // would be a second transmission in one attempt, so the failure is
        // the attempt's and the retry policy decides what comes next.
        if let Some(mut connection) = self.take_idle() {
            let mut text_written = false;
            let sent = within(
                self.timeout,
                "send",
                transact(&mut connection, envelope, &message, &mut text_written),
            )
            .await;
            match sent {
                Ok(response) => {
                    self.give_back(connection);
                    return Ok(response);
                }
                Err(PoolError::Smtp(err)) if err.status().is_some() => {
                    return Err(PoolError::Smtp(err));
                }
                Err(err) if text_written => return Err(err),
                Err(_) => {}
            }
        }
        let mut connection = self.connect().await?;
        let response = within(
            self.timeout,
            "send",
            transact(&mut connection, envelope, &message, &mut false),
        )
        .await?;
        self.give_back(connection);
        Ok(response)
    }

    /// Connects and greets, which checks reachability, TLS and credentials;
    /// the connection is kept for the next send.
    pub async fn check(&self) -> Result<(), PoolError> {
        let connection = self.connect().await?;
        self.give_back(connection);
        Ok(())
    }
}

/// One mail transaction. A refused command leaves the connection out of the
/// pool (it is dropped by the caller's error path), so no pipelined reply
/// is ever read as the answer to a later command. `text_written` is set
/// once the message's text starts going out: from then on the server may
/// hold a copy whatever happens to the connection.
async fn transact(
    connection: &mut Connection,
    envelope: &Envelope,
    message: &str,
    text_written: &mut bool,
) -> Result<Response, PoolError> {
    let offers = |extension| connection.smtp.server_info().supports_feature(extension);
    let mut options = Vec::new();
    let mut addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.any(|address| !AsRef::<str>::as_ref(address).is_ascii()) {
        if !offers(Extension::SmtpUtfEight) {
            return Err(PoolError::Refused(
                "the address is not ASCII and the SMTP server does not offer SMTPUTF8",
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !offers(Extension::EightBitMime) {
            return Err(PoolError::Refused(
                "the message is not ASCII and the SMTP server does not offer 8BITMIME",
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), options);
    let recipients: Vec<Rcpt> = envelope
        .to()
        .iter()
        .map(|to| Rcpt::new(to.clone(), Vec::new()))
        .collect();
    let outcome = async {
        if connection.pipelining {
            let mut commands = mail.to_string();
            for recipient in &recipients {
                commands.push_str(&recipient.to_string());
            }
            commands.push_str(&Data.to_string());
            connection.smtp.command(Verbatim(&commands, "")).await?;
            for _ in 0..=recipients.len() {
                connection.smtp.read_response().await?;
            }
        } else {
            connection.smtp.command(mail).await?;
            for recipient in recipients {
                connection.smtp.command(recipient).await?;
            }
            connection.smtp.command(Data).await?;
        }
        *text_written = true;
        connection.smtp.command(Verbatim(message, ".\r\n")).await
    }
    .await;
    if outcome.is_err() {
        // The rest of a pipelined batch may still be on its way: this
        // session's replies can no longer be matched to commands.
        connection.smtp.abort().await;
    }
    outcome.map_err(PoolError::Smtp)
}
