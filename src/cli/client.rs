//! The HTTP client the CLI verbs use to talk to a running daemon.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::ErrorBody;
use crate::http::api::{ACTOR_HEADER, IDEMPOTENCY_HEADER};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach crisisd at {url}: {source}. Is `crisisd serve` running there? (set --url or CRISISD_URL)"
    )]
    Unreachable { url: String, source: reqwest::Error },
    #[error("crisisd answered {status}: {message}")]
    Api { status: StatusCode, message: String },
    #[error("unexpected answer from crisisd: {0}")]
    Decode(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    actor: Option<String>,
}

/// Attempts for a request that could not reach the daemon; each carries the
/// same Idempotency-Key, so a retried declaration declares once.
const ATTEMPTS: u32 = 3;

impl ApiClient {
    pub fn new(base: &str, token: Secret, actor: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("crisisd-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            actor,
        })
    }

    /// The daemon's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.request(Method::PUT, path, Some(body)).await
    }

    async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let key = uuid::Uuid::new_v4().to_string();
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.token.expose());
            if let Some(actor) = &self.actor {
                request = request.header(ACTOR_HEADER, actor);
            }
            if let Some(body) = body {
                request = request.header(IDEMPOTENCY_HEADER, &key).json(body);
            }
            match request.send().await {
                Ok(response) if response.status().is_server_error() && attempt < ATTEMPTS => {}
                Ok(response) => break response,
                Err(err) if attempt < ATTEMPTS && (err.is_connect() || err.is_timeout()) => {}
                Err(source) => {
                    return Err(ClientError::Unreachable {
                        url: self.base.clone(),
                        source,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
        };
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error.message)
                .unwrap_or(text);
            return Err(ClientError::Api { status, message });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
