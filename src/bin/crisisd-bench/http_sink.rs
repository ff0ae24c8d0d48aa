//! A fast SMS gateway sink on loopback: accepts any POST and answers 200
//! `{"status":"queued"}`, which the generated `sms_gateway` channel checks
//! as its success condition. The body is not parsed: the sink only counts.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::sink::SinkStats;

/// The path the generated channel posts to.
pub const PATH: &str = "/v1/messages";

pub struct HttpSink {
    pub addr: SocketAddr,
    pub stats: Arc<SinkStats>,
    task: JoinHandle<()>,
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the HTTP sink")?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(SinkStats::new());
        let app = Router::new()
            .route(PATH, post(accept))
            .with_state(Arc::clone(&stats));
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("http sink: stopped: {err}");
            }
        });
        Ok(Self { addr, stats, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }
}

async fn accept(State(stats): State<Arc<SinkStats>>, _body: Bytes) -> impl IntoResponse {
    stats.accept(None);
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"queued"}"#,
    )
}
