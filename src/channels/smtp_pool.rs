//! SMTP connections for plain and STARTTLS relays, kept open and reused.
//!
//! lettre's own pool opens its sockets without `TCP_NODELAY`, and it writes
//! a message and the closing `CRLF.CRLF` separately: Nagle's algorithm then
//! holds the terminator until the server's delayed ACK, about 40 ms on
//! Linux, for every message on a reused connection (measured with
//! crisisd-bench: 45 ms a message, ~1,100 messages/s at 64 connections).
//! So the socket is opened here, with no-delay, and handed to lettre's
//! `AsyncSmtpConnection`, which still speaks SMTP, STARTTLS and AUTH.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
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
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// Why a send failed: an SMTP error to classify, or no answer in time.
pub enum PoolError {
    Smtp(lettre::transport::smtp::Error),
    Timeout(&'static str),
    Connect(std::io::Error),
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
        }
    }
}

async fn within<T>(
    timeout: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, PoolError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| PoolError::Timeout(what))?
        .map_err(PoolError::Smtp)
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

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, PoolError> {
        let stream = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| PoolError::Timeout("connect"))?
        .map_err(PoolError::Connect)?;
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        let mut connection = within(
            self.timeout,
            "greet",
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await?;
        if let Some(tls) = &self.starttls {
            within(
                self.timeout,
                "start TLS",
                connection.starttls(tls.clone(), &self.hello),
            )
            .await?;
        }
        if let Some(credentials) = &self.credentials {
            within(
                self.timeout,
                "authenticate",
                connection.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await?;
        }
        Ok(connection)
    }

    /// A reusable idle connection, if one is fresh enough.
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle();
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !connection.has_broken() {
                return Some(connection);
            }
        }
        None
    }

    fn give_back(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push((connection, Instant::now()));
        }
    }

    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, PoolError> {
        // A reused connection the server has closed fails without an SMTP
        // reply: then the message goes once more, on a new connection.
        if let Some(mut connection) = self.take_idle() {
            match within(self.timeout, "send", connection.send(envelope, message)).await {
                Ok(response) => {
                    self.give_back(connection);
                    return Ok(response);
                }
                Err(PoolError::Smtp(err)) if err.status().is_some() => {
                    return Err(PoolError::Smtp(err));
                }
                Err(_) => {}
            }
        }
        let mut connection = self.connect().await?;
        let response = within(self.timeout, "send", connection.send(envelope, message)).await?;
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
