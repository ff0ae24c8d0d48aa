//! The helpdesk webhook (`[answers.helpdesk]`): every urgent answer is
//! POSTed as JSON, each attempt with a timeout, retried a second apart
//! and then doubling. The callback list in the store is the record; the
//! webhook is a courtesy that a stop may cut short (`stop` cancels the
//! posts still retrying and waits for them).

use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::domain::question::HelpdeskSettings;
use crate::outbox::NewAnswer;
use crate::plan::PlanInputs;

/// What the helpdesk receives.
#[derive(Debug, Clone, Serialize)]
pub struct HelpdeskEvent {
    pub event: &'static str,
    pub answer_id: String,
    pub crisis_id: Option<String>,
    pub question: Option<String>,
    pub answer: Option<u8>,
    pub point: &'static str,
    pub address: String,
    pub locale: String,
    pub channel: String,
    pub text: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// The posts in flight, owned: cancelled and awaited by `stop`.
pub struct Helpdesk {
    client: reqwest::Client,
    inputs: crate::plan::SharedInputs,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Helpdesk {
    pub fn new(client: reqwest::Client, inputs: crate::plan::SharedInputs) -> Self {
        Self {
            client,
            inputs,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Posts `answer` to the helpdesk, if one is configured (read now, so
    /// a reload applies to the next answer).
    pub fn notify(&self, answer: &NewAnswer) {
        let inputs: std::sync::Arc<PlanInputs> = self.inputs.load_full();
        let Some(settings) = inputs.answers.helpdesk.clone() else {
            return;
        };
        let event = HelpdeskEvent {
            event: "urgent_answer",
            answer_id: answer.id.to_string(),
            crisis_id: answer.crisis_id.map(|id| id.to_string()),
            question: answer.question.clone(),
            answer: answer.answer,
            point: answer.point.as_str(),
            address: answer.address.clone(),
            locale: answer.locale.clone(),
            channel: answer.channel.clone(),
            text: answer.text.clone(),
            received_at: answer.received_at,
        };
        let client = self.client.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = post(&client, &settings, &event) => {}
                () = cancel.cancelled() => {
                    warn!(answer = %event.answer_id, "Stopped posting an urgent answer to the helpdesk; it is on the callback list.");
                }
            }
        });
    }

    /// Cancels the posts still retrying and waits for them.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn post(client: &reqwest::Client, settings: &HelpdeskSettings, event: &HelpdeskEvent) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=settings.attempts {
        let sent = client
            .post(&settings.url)
            .timeout(settings.timeout)
            .json(event)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                info!(answer = %event.answer_id, attempt, "Posted an urgent answer to the helpdesk.");
                return;
            }
            Ok(response) => {
                warn!(answer = %event.answer_id, attempt, status = %response.status(), "The helpdesk refused an urgent answer.");
            }
            Err(err) => {
                warn!(answer = %event.answer_id, attempt, error = %err, "Could not post an urgent answer to the helpdesk.");
            }
        }
        if attempt < settings.attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
    warn!(answer = %event.answer_id, "Gave up posting an urgent answer to the helpdesk; it is on the callback list.");
}
