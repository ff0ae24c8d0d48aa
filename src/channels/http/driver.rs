//! The one HTTP driver: `HttpChannel<P>` owns what every provider channel
//! has (name, concurrency, timeout, the shared client) and the exchange
//! (send with the timeout, map a failed request, read status, headers and
//! body, keep secrets out of reasons, hand the answer to the provider). A
//! provider supplies only its requests and how it reads its answers.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{IntoUrl, RequestBuilder, Response};

use super::{Answer, classify, redact, request_failed, scrub};
use crate::channels::{
    Channel, ChannelError, ChannelSection, DeliveryError, HttpSection, Kind, Receipt,
};
use crate::outbox::Delivery;

/// One HTTP provider: what it sends and how it reads what comes back.
#[async_trait]
pub trait Provider: Kind<Settings: HttpSection> + Send + Sync + Sized + 'static {
    /// How reasons name the provider: `Twilio`, `Slack`…
    const LABEL: &'static str;

    /// The provider for one section; `Err` says what is wrong with it (the
    /// driver names the channel).
    fn new(settings: &Self::Settings) -> Result<Self, String>;

    /// Sends one delivery: builds its request and hands it to
    /// `exchange.deliver`. A provider that needs more than one call (a login
    /// first) makes each through `exchange.call`.
    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError>;

    /// Checks, without sending anything, that the provider answers and
    /// takes our credentials: `exchange.check` on a harmless call, or
    /// `exchange.reach` its host where it has none.
    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError>;

    /// What an answer to a delivery means: a success is read for its
    /// receipt, anything else classified.
    fn read(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        if answer.status.is_success() {
            self.receipt(answer)
        } else {
            Err(self.classify(answer))
        }
    }

    /// What a successful answer says: the provider's id for the message,
    /// or that it was not a success after all.
    fn receipt(&self, _answer: &Answer) -> Result<Receipt, DeliveryError> {
        Ok(Receipt::default())
    }

    /// What a failed answer means; the shared reading unless the provider
    /// says more.
    fn classify(&self, answer: &Answer) -> DeliveryError {
        classify(self.label(), answer.status, &answer.headers, &answer.body)
    }

    /// Credentials that may come back in an answer or an error (a webhook
    /// URL, a token in the path) and must not reach a reason.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }

    /// How reasons name this channel's provider.
    fn label(&self) -> &str {
        Self::LABEL
    }
}

/// A channel that talks HTTP to a provider.
pub struct HttpChannel<P> {
    name: String,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
    provider: P,
}

impl<P: Provider> HttpChannel<P> {
    pub fn from_settings(
        settings: &P::Settings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        let provider = P::new(settings).map_err(|message| ChannelError::Config {
            channel: settings.name().to_owned(),
            message,
        })?;
        Ok(Self {
            name: settings.name().to_owned(),
            // Configured 0: one at a time is the least that still sends.
            concurrency: settings.concurrency().max(1),
            timeout: settings.timeout(),
            http,
            provider,
        })
    }

    fn exchange(&self) -> Exchange<'_, P> {
        Exchange {
            channel: &self.name,
            http: &self.http,
            timeout: self.timeout,
            provider: &self.provider,
        }
    }
}

#[async_trait]
impl<P: Provider> Channel for HttpChannel<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        self.provider.send(&self.exchange(), delivery).await
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        self.provider.healthcheck(&self.exchange()).await
    }
}

/// The most of an answer's body that is read. Providers answer in a few
/// KB; an error page, or a server answering with an endless body, is cut
/// here and the rest is never read: the connection is closed instead (a
/// gateway's 400 MB error body took the daemon to 2.65 GB with three in
/// flight when bodies were read whole).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The body, its first `MAX_ANSWER_BYTES` at most, as text (invalid UTF-8
/// replaced: it only feeds a provider's parser and an excerpt).
async fn read_capped(mut response: Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// One channel's way to its provider: every request goes out with the
/// channel's timeout, and every answer and error is read the same way.
pub struct Exchange<'a, P> {
    channel: &'a str,
    http: &'a reqwest::Client,
    timeout: Duration,
    provider: &'a P,
}

impl<P: Provider> Exchange<'_, P> {
    /// The channel's name, for logs.
    pub fn channel(&self) -> &str {
        self.channel
    }

    /// The client to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        self.http
    }

    /// Sends a request and reads the answer, whatever its status, its
    /// body up to `MAX_ANSWER_BYTES`.
    pub async fn call(&self, request: RequestBuilder) -> Result<Answer, DeliveryError> {
        let response = self.send(request).await?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = read_capped(response).await.map_err(|e| self.failed(e))?;
        Ok(self.answer(status, headers, &body))
    }

    /// Sends a delivery's request; the provider reads the answer.
    pub async fn deliver(&self, request: RequestBuilder) -> Result<Receipt, DeliveryError> {
        let answer = self.call(request).await?;
        self.provider.read(&answer)
    }

    /// Sends a healthcheck's request: a success is healthy; anything else
    /// is classified as a delivery's failure would be.
    pub async fn check(&self, request: RequestBuilder) -> Result<(), DeliveryError> {
        let response = self.send(request).await?;
        let (status, headers) = (response.status(), response.headers().clone());
        if status.is_success() {
            return Ok(());
        }
        let body = read_capped(response).await.unwrap_or_default();
        Err(self.provider.classify(&self.answer(status, headers, &body)))
    }

    /// Checks that a host answers HTTP at all, whatever it answers: for
    /// providers with no call that checks without posting.
    pub async fn reach(&self, url: impl IntoUrl) -> Result<(), DeliveryError> {
        self.send(self.http.head(url)).await.map(drop)
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, DeliveryError> {
        request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.failed(e))
    }

    fn answer(
        &self,
        status: reqwest::StatusCode,
        headers: reqwest::header::HeaderMap,
        body: &str,
    ) -> Answer {
        Answer {
            status,
            headers,
            body: scrub(body, &self.provider.secrets()),
        }
    }

    fn failed(&self, err: reqwest::Error) -> DeliveryError {
        redact(
            request_failed(self.provider.label(), err),
            &self.provider.secrets(),
        )
    }
}
