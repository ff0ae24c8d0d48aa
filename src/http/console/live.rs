//! Live progress over Server-Sent Events: once a second, the rendered
//! progress of the dashboard's active crises, or of one crisis, which the
//! htmx SSE extension swaps into the page. A stream ends when the daemon
//! stops or after an hour, and the browser reconnects (signing in again
//! if its session ended meanwhile).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use minijinja::context;
use tracing::warn;

use super::super::{ApiError, AppState};
use super::Page;
use super::pages::{cards, dashboard_parts};
use super::session::Staff;
use crate::domain::CrisisId;

const EVERY: Duration = Duration::from_secs(1);
/// Ticks before a stream ends and the browser opens a new one.
const TICKS: usize = 3600;

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;
type Events = Sse<axum::response::sse::KeepAliveStream<EventStream>>;

/// Renders `render`'s HTML as event `name` at once, then every second.
fn every_second<F, Fut>(state: &AppState, name: &'static str, render: F) -> Events
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<String>> + Send,
{
    let render = Arc::new(render);
    let stopping = state.service.stopping();
    let ticks = futures::stream::iter(0..TICKS).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(EVERY).await;
        }
    });
    let stream = ticks
        .then(move |()| {
            let render = render.clone();
            async move { render().await }
        })
        .filter_map(move |html| async move {
            html.map(|html| Ok(Event::default().event(name).data(html)))
        })
        .take_until(stopping.cancelled_owned());
    let stream: EventStream = Box::pin(stream);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub async fn dashboard(State(state): State<AppState>, staff: Staff, headers: HeaderMap) -> Events {
    let lang = super::view::language(&headers, None);
    let shared = state.clone();
    every_second(&state, "dashboard", move || {
        let state = shared.clone();
        let staff = staff.clone();
        async move {
            let parts = dashboard_parts(&state)
                .await
                .map_err(|err| warn!(error = %err, "Live dashboard: the store failed."))
                .ok()?;
            let page = Page::of(&state, &staff, lang);
            page.fragment("_active.html.j2", parts)
        }
    })
}

pub async fn crisis(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Events, ApiError> {
    let id: CrisisId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no crisis with id `{id}`")))?;
    if state.storage.crises.crisis(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no crisis with id {id}")));
    }
    let lang = super::view::language(&headers, None);
    let shared = state.clone();
    Ok(every_second(&state, "progress", move || {
        let state = shared.clone();
        let staff = staff.clone();
        async move {
            let crisis = state.storage.crises.crisis(id).await.ok().flatten()?;
            let card = cards(&state, std::slice::from_ref(&crisis), Some(id))
                .await
                .map_err(|err| warn!(error = %err, "Live progress: the store failed."))
                .ok()?
                .pop();
            Page::of(&state, &staff, lang)
                .fragment("_progress.html.j2", context! { crisis => card })
        }
    }))
}
