//! Inbound webhooks: status pages and alerting systems declare, update and
//! resolve crises. Each configured hook checks its source's signature (or
//! token), reduces the payload to signals keyed by the source's incident
//! id, and applies its rules: one source incident, one crisis.
//!
//! Requests, holds, confirmations and discards are applied one at a time
//! (one lock), so a hold running out and a resolution arriving together
//! cannot both win.

mod alertmanager;
mod betterstack;
pub mod bounces;
pub mod dsn;
pub mod flag_file;
mod grouping;
mod instatus;
mod pagerduty;
mod rules;
mod signal;
mod standard;
mod statuspage;
mod storm;
mod uptime_kuma;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use rules::{Matcher, Rules};
pub use signal::{Parsed, Signal, SignalState};
pub use verify::{SecretFormatError, Verifier, VerifyError, standard_key};

use crate::clock::Clock;
use crate::config::{HookMode, HookSettings, HookSource, Noteworthy, Settings};
use crate::domain::{Actor, ActorSource, Crisis, CrisisId, Declaration};
use crate::outbox::{
    CrisisStore, HookLogEntry, HookStore, Leadership, Pending, PendingState, SourceLink,
    SourceLinkStore, Storage, StoreError, Verdict,
};
use crate::service::{
    Applied, CrisisService, ServiceError, SourceRef, TransitionContext, TransitionOutcome,
};
use crate::telemetry::LogThrottle;

/// Largest webhook body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest a hold may be: a longer one is surely a typo.
pub const MAX_DECLARE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One configured hook, ready to check and read requests.
#[derive(Debug)]
pub struct Hook {
    pub settings: HookSettings,
    verifier: Verifier,
    rules: Rules,
}

impl Hook {
    /// Builds a hook, or says everything wrong with it.
    pub fn build(settings: &HookSettings) -> Result<Self, Vec<String>> {
        let name = &settings.name;
        let mut problems = Vec::new();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            problems.push(format!(
                "hooks `{name}`: a name is 1 to 64 letters, digits, `-` or `_` (it is part of the URL)"
            ));
        }
        if settings.auth() == crate::config::HookAuth::Signature && !settings.source.signs() {
            problems.push(format!(
                "hooks `{name}`: {} does not sign its webhooks; use auth = \"token\"",
                settings.source.as_str()
            ));
        }
        if settings.source != HookSource::Grafana
            && (settings.signature_header.is_some() || settings.timestamp_header.is_some())
        {
            problems.push(format!(
                "hooks `{name}`: signature_header and timestamp_header are for grafana hooks"
            ));
        }
        if settings.declare_after > MAX_DECLARE_AFTER {
            problems.push(format!(
                "hooks `{name}`: declare_after is at most 24h, not {}",
                humantime::format_duration(settings.declare_after)
            ));
        }
        if settings.tolerance < Duration::from_secs(1) {
            problems.push(format!("hooks `{name}`: tolerance must be at least 1s"));
        }
        problems.extend(fatigue_problems(settings));
        let rules = Rules::new(settings)
            .map_err(|errors| {
                problems.extend(errors.into_iter().map(|e| format!("hooks `{name}`: {e}")));
            })
            .ok();
        let secret = settings.secret();
        let verifier = if !secret.is_set() {
            problems.push(format!(
                "hooks `{name}`: set secret_env or secret_file (every hook is authenticated)"
            ));
            None
        } else {
            match secret.read() {
                Ok(secret) => Verifier::new(settings, &secret)
                    .map_err(|e| problems.push(format!("hooks `{name}`: secret: {e}")))
                    .ok(),
                Err(err) => {
                    problems.push(format!("hooks `{name}`: secret: {err}"));
                    None
                }
            }
        };
        match (verifier, rules) {
            (Some(verifier), Some(rules)) if problems.is_empty() => Ok(Self {
                settings: settings.clone(),
                verifier,
                rules,
            }),
            _ => Err(problems),
        }
    }

    /// Builds every configured hook; names must be unique.
    pub fn build_all(settings: &Settings) -> Result<Vec<Hook>, Vec<String>> {
        let mut problems = Vec::new();
        let mut hooks = Vec::new();
        let mut names = std::collections::HashSet::new();
        for hook in &settings.hooks {
            if !names.insert(hook.name.as_str()) {
                problems.push(format!("hooks `{}`: the name is used twice", hook.name));
            }
            match Hook::build(hook) {
                Ok(hook) => hooks.push(hook),
                Err(errors) => problems.extend(errors),
            }
        }
        if problems.is_empty() {
            Ok(hooks)
        } else {
            Err(problems)
        }
    }

    fn name(&self) -> &str {
        &self.settings.name
    }

    fn parse(&self, body: &[u8]) -> Result<Parsed, String> {
        let parsed = self.parse_signals(body)?;
        Ok(grouping::group(
            parsed,
            &self.settings.group_by,
            &self.rules,
        ))
    }

    fn parse_signals(&self, body: &[u8]) -> Result<Parsed, String> {
        use alertmanager::Flavor;
        match self.settings.source {
            HookSource::Statuspage => statuspage::parse(body),
            HookSource::Alertmanager => {
                alertmanager::parse(body, Flavor::Alertmanager, &self.settings.severity_label)
            }
            HookSource::Grafana => {
                alertmanager::parse(body, Flavor::Grafana, &self.settings.severity_label)
            }
            HookSource::Betterstack => betterstack::parse(body),
            HookSource::Instatus => instatus::parse(body),
            HookSource::Pagerduty => pagerduty::parse(body),
            HookSource::UptimeKuma => uptime_kuma::parse(body),
            HookSource::Standard => standard::parse(body),
        }
    }
}

/// The fields an update changes when none of them is `notify_on`'s (it
/// then messages no one); `None` when readers should hear of it.
fn quiet_change(update: &crate::domain::CrisisUpdate, notify_on: &[Noteworthy]) -> Option<String> {
    let changed: Vec<(Noteworthy, &str)> = [
        (Noteworthy::Kind, update.kind.is_some(), "the kind"),
        (
            Noteworthy::Severity,
            update.severity.is_some(),
            "the severity",
        ),
        (
            Noteworthy::Status,
            update.message.is_some(),
            "the status message",
        ),
        (Noteworthy::Title, update.title.is_some(), "the title"),
        (
            Noteworthy::Description,
            update.summary.is_some(),
            "the description",
        ),
    ]
    .into_iter()
    .filter(|(_, changed, _)| *changed)
    .map(|(field, _, words)| (field, words))
    .collect();
    if changed.iter().any(|(field, _)| notify_on.contains(field)) {
        return None;
    }
    let words: Vec<&str> = changed.iter().map(|(_, words)| *words).collect();
    Some(words.join(" and "))
}

/// What is wrong with a hook's storm, grouping and notification keys.
fn fatigue_problems(settings: &HookSettings) -> Vec<String> {
    let name = &settings.name;
    let mut problems = Vec::new();
    if settings.max_new_crises == 0 {
        problems.push(format!(
            "hooks `{name}`: max_new_crises must be at least 1 (mode = \"propose\" proposes every incident)"
        ));
    }
    if !settings.group_by.is_empty()
        && !matches!(
            settings.source,
            HookSource::Alertmanager | HookSource::Grafana
        )
    {
        problems.push(format!(
            "hooks `{name}`: group_by is for alertmanager and grafana hooks"
        ));
    }
    if settings.group_by.len() > 1
        && settings
            .group_by
            .iter()
            .any(|l| l == crate::config::GROUP_KEY)
    {
        problems.push(format!(
            "hooks `{name}`: group_by is either [\"groupKey\"] or a list of label names"
        ));
    }
    problems
}

/// The link between a source incident and its crisis is stored under this
/// source name.
fn link_source(hook: &str) -> String {
    format!("hook:{hook}")
}

/// What a webhook did; the body of its 200 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// `Applied` (something changed), `Ignored` or `Duplicate`.
    pub verdict: Verdict,
    pub transitions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no hook named `{0}` is configured")]
    UnknownHook(String),
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Unreadable(String),
    #[error("{0}")]
    Unauthorized(VerifyError),
    #[error("{0}")]
    Malformed(String),
    #[error("applying the webhook failed: {0}; the source may send it again")]
    Failed(String),
}

impl IntakeError {
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::UnknownHook(_) => 404,
            IntakeError::TooLarge => 413,
            IntakeError::Unreadable(_) => 400,
            IntakeError::Unauthorized(_) => 401,
            IntakeError::Malformed(_) => 422,
            IntakeError::Failed(_) => 500,
        }
    }

    /// Refused before the sender was authenticated: anyone can cause these
    /// at will, so they are counted in memory rather than written to the
    /// webhook log one by one.
    fn unauthenticated(&self) -> bool {
        matches!(
            self,
            IntakeError::UnknownHook(_)
                | IntakeError::TooLarge
                | IntakeError::Unreadable(_)
                | IntakeError::Unauthorized(_)
        )
    }

    fn verdict(&self) -> Verdict {
        match self {
            IntakeError::UnknownHook(_) => Verdict::UnknownHook,
            IntakeError::TooLarge => Verdict::TooLarge,
            IntakeError::Unreadable(_) | IntakeError::Malformed(_) => Verdict::Malformed,
            IntakeError::Unauthorized(_) => Verdict::Unauthorized,
            IntakeError::Failed(_) => Verdict::Failed,
        }
    }
}

/// Why a confirmation or discard was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("no proposed or held crisis with id {0}")]
    NotFound(CrisisId),
    #[error("{id} is {state}; only a held or proposed crisis can be confirmed or discarded")]
    NotOpen { id: CrisisId, state: &'static str },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request as the HTTP layer hands it over.
pub struct Request<'a> {
    pub hook: &'a str,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    /// `Err` when the body could not be read: too large (`None`) or
    /// broken (why).
    pub body: Result<&'a [u8], Option<String>>,
}

pub struct Intake {
    hooks: HashMap<String, Hook>,
    service: Arc<CrisisService>,
    store: Arc<dyn HookStore>,
    links: Arc<dyn SourceLinkStore>,
    crises: Arc<dyn CrisisStore>,
    clock: Arc<dyn Clock>,
    lock: Mutex<()>,
    /// Wakes the hold timer when a new hold is made.
    wake: Notify,
    /// One line per reason and hook every 10 s for refused webhooks.
    refusals: LogThrottle,
    /// How many crises webhooks opened lately (`[fatigue]`).
    storm: storm::Storm,
}

impl Intake {
    pub fn new(
        hooks: Vec<Hook>,
        service: Arc<CrisisService>,
        storage: &Storage,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            hooks: hooks
                .into_iter()
                .map(|h| (h.name().to_owned(), h))
                .collect(),
            service,
            store: storage.hooks.clone(),
            links: storage.source_links.clone(),
            crises: storage.crises.clone(),
            clock,
            lock: Mutex::new(()),
            wake: Notify::new(),
            refusals: LogThrottle::new(Duration::from_secs(10)),
            storm: storm::Storm::default(),
        }
    }

    /// `[fatigue] max_webhook_crises` within `storm_window`.
    pub fn with_storm_limit(mut self, max: u32, window: Duration) -> Self {
        self.storm = storm::Storm::new(max, window);
        self
    }

    /// Receives one webhook and records it in the hook log, unless it was
    /// refused before its sender was authenticated (see `refused`).
    pub async fn receive(&self, request: Request<'_>) -> Result<Receipt, IntakeError> {
        let received_at = self.clock.now();
        let source = self
            .hooks
            .get(request.hook)
            .map(|h| h.settings.source.as_str())
            .unwrap_or("unknown");
        let mut delivery_id = None;
        let result = self.process(&request, &mut delivery_id).await;
        if let Err(err) = &result
            && err.unauthenticated()
        {
            self.refused(request.hook, err);
            return result;
        }
        let (status, verdict, transitions, error) = match &result {
            Ok(receipt) => (200, receipt.verdict, receipt.transitions.clone(), None),
            Err(err) => (
                err.status(),
                err.verdict(),
                Vec::new(),
                Some(err.to_string()),
            ),
        };
        let entry = HookLogEntry {
            seq: 0,
            hook: request.hook.chars().take(64).collect(),
            source: source.to_owned(),
            received_at,
            status,
            verdict,
            transitions,
            error,
            delivery_id,
        };
        match &result {
            Ok(receipt) => {
                info!(hook = %entry.hook, verdict = %receipt.verdict, transitions = ?receipt.transitions, "Webhook received.")
            }
            Err(err @ IntakeError::Failed(_)) => {
                error!(hook = %entry.hook, error = %err, "A webhook could not be applied.")
            }
            Err(err) => warn!(hook = %entry.hook, status, error = %err, "Webhook refused."),
        }
        if let Err(err) = self.store.record_hook(&entry).await {
            warn!(error = %err, "Could not record a webhook in the hook log.");
        }
        result
    }

    /// A refusal an outsider can repeat at will (a flood of made-up hook
    /// names or bad signatures): a counter and a throttled log line, so it
    /// costs no store write and cannot push accepted webhooks out of the
    /// log. Unknown names are counted together, to bound the labels.
    fn refused(&self, hook: &str, err: &IntakeError) {
        let known = if self.hooks.contains_key(hook) {
            hook
        } else {
            "unknown"
        };
        let reason = err.verdict().as_str();
        crate::telemetry::webhook_refused(known, reason);
        if let Some(suppressed) = self.refusals.allow(&format!("{reason}/{known}")) {
            let name: String = hook.chars().take(64).collect();
            warn!(
                hook = %name.escape_debug(),
                status = err.status(),
                error = %err.to_string().escape_debug(),
                suppressed,
                "Webhook refused (one line per reason and hook every 10 s; \
                 crisisd_webhook_refusals_total counts them all)."
            );
        }
    }

    async fn process(
        &self,
        request: &Request<'_>,
        delivery: &mut Option<String>,
    ) -> Result<Receipt, IntakeError> {
        let hook = self
            .hooks
            .get(request.hook)
            .ok_or_else(|| IntakeError::UnknownHook(request.hook.to_owned()))?;
        let body = match &request.body {
            Ok(body) => *body,
            Err(None) => return Err(IntakeError::TooLarge),
            Err(Some(why)) => return Err(IntakeError::Unreadable(why.clone())),
        };
        let signed_id = hook
            .verifier
            .verify(request.headers, request.query, body, self.clock.now())
            .map_err(IntakeError::Unauthorized)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(IntakeError::Malformed("the body is empty".into()));
        }
        let parsed = hook.parse(body).map_err(IntakeError::Malformed)?;
        // Without an id from the source, the body's hash stands in: the
        // same notification sent twice is applied once.
        let id = signed_id
            .or(parsed.delivery_id.clone())
            .unwrap_or_else(|| format!("sha256:{:x}", Sha256::digest(body)));
        *delivery = Some(id.clone());
        let _one_at_a_time = self.lock.lock().await;
        let failed = |e: StoreError| IntakeError::Failed(e.to_string());
        if self
            .store
            .delivery_seen(hook.name(), &id)
            .await
            .map_err(failed)?
        {
            return Ok(Receipt {
                verdict: Verdict::Duplicate,
                transitions: Vec::new(),
                note: Some(format!(
                    "delivery {id} was received before; nothing changed"
                )),
            });
        }
        let mut transitions = Vec::new();
        let mut changed = false;
        let mut opened = 0;
        for signal in &parsed.signals {
            let step = self
                .apply(hook, signal, &mut opened)
                .await
                .map_err(|e| IntakeError::Failed(e.to_string()))?;
            changed |= step.changed;
            transitions.push(step.line);
        }
        self.store
            .remember_delivery(hook.name(), &id, self.clock.now())
            .await
            .map_err(failed)?;
        Ok(Receipt {
            verdict: if changed {
                Verdict::Applied
            } else {
                Verdict::Ignored
            },
            transitions,
            note: parsed.note,
        })
    }

    fn context(
        hook: &str,
        key: &str,
        declaration: &Declaration,
        actor: Actor,
    ) -> TransitionContext {
        let fingerprint = serde_json::to_vec(declaration)
            .map(|bytes| format!("{:x}", Sha256::digest(bytes)))
            .unwrap_or_default();
        TransitionContext {
            source: Some(SourceRef {
                source: link_source(hook),
                external_id: key.to_owned(),
                fingerprint,
            }),
            ..TransitionContext::by(actor)
        }
    }

    fn hook_actor(hook: &str) -> Actor {
        Actor::new(ActorSource::Webhook, hook)
    }

    /// Applies one signal under the intake lock: to the crisis its incident
    /// is linked to, to the held or proposed declaration it refreshes, or as
    /// a new incident; once more when another daemon linked the incident
    /// while this one was declaring it.
    /// `opened` counts the crises this request opened, for the storm cap.
    async fn apply(
        &self,
        hook: &Hook,
        signal: &Signal,
        opened: &mut u32,
    ) -> Result<Step, ServiceError> {
        match self.apply_once(hook, signal, opened).await {
            // Another daemon sharing the store declared this incident
            // first: it is linked now, and applies to that crisis.
            Err(ServiceError::Conflict(_)) => self.apply_once(hook, signal, opened).await,
            applied => applied,
        }
    }

    async fn apply_once(
        &self,
        hook: &Hook,
        signal: &Signal,
        opened: &mut u32,
    ) -> Result<Step, ServiceError> {
        let name = hook.name();
        let key = signal.key.as_str();
        let source = link_source(name);
        let link = self.links.source_link(&source, key).await?;
        let linked = match &link {
            Some(link) => self.crises.crisis(link.crisis_id).await?,
            None => None,
        };
        let open = self.store.open_pending(name, key).await?;
        if signal.state == SignalState::Resolved {
            return self
                .resolved_at_source(hook, signal, open, link, linked)
                .await;
        }
        if let Some(link) = &link {
            return self.linked_signal(hook, signal, link, linked).await;
        }
        if let Some(pending) = open {
            return self.refresh_pending(hook, signal, pending).await;
        }
        self.new_incident(hook, signal, opened).await
    }

    /// The source resolved its incident: a held or proposed declaration is
    /// withdrawn, a linked active crisis resolved (if the hook may).
    async fn resolved_at_source(
        &self,
        hook: &Hook,
        signal: &Signal,
        open: Option<Pending>,
        link: Option<SourceLink>,
        linked: Option<Crisis>,
    ) -> Result<Step, ServiceError> {
        let name = hook.name();
        let key = signal.key.as_str();
        if let Some(mut pending) = open {
            let id = pending.id;
            let was = pending.state.as_str();
            pending.state = PendingState::Withdrawn;
            pending.updated_at = self.clock.now();
            self.store.save_pending(&pending).await?;
            return Ok(Step::changed(format!(
                "withdrawn {id}: {key} resolved at the source while {was}; nothing was sent"
            )));
        }
        match (link, linked) {
            (Some(_), Some(crisis)) if crisis.is_active() && hook.settings.resolve => {
                let declaration = hook.rules.declaration(signal);
                let ctx = Self::context(name, key, &declaration, Self::hook_actor(name));
                let message = signal.message.clone().filter(|m| !m.trim().is_empty());
                self.service.resolve(crisis.id, message, ctx).await?;
                Ok(Step::changed(format!("resolved {}", crisis.id)))
            }
            (Some(_), Some(crisis)) if crisis.is_active() => Ok(Step::same(format!(
                "not resolved {}: this hook has resolve = false",
                crisis.id
            ))),
            (Some(_), _) => {
                self.links.unlink_source(&link_source(name), key).await?;
                Ok(Step::same(format!(
                    "{key} resolved; its crisis was already resolved in crisisd"
                )))
            }
            (None, _) => Ok(Step::same(format!("{key} resolved; no crisis to resolve"))),
        }
    }

    /// A signal about an incident already linked to a crisis: an update
    /// when something changed and the hook may update.
    async fn linked_signal(
        &self,
        hook: &Hook,
        signal: &Signal,
        link: &SourceLink,
        linked: Option<Crisis>,
    ) -> Result<Step, ServiceError> {
        let name = hook.name();
        let key = signal.key.as_str();
        let Some(crisis) = linked.filter(|c| c.is_active()) else {
            return Ok(Step::same(format!(
                "ignored {key}: its crisis {} was resolved in crisisd; it is tracked again once the source resolves it",
                link.crisis_id
            )));
        };
        if !hook.settings.update {
            return Ok(Step::same(format!(
                "unchanged {}: update = false",
                crisis.id
            )));
        }
        let Some(update) = hook.rules.update(signal, &crisis) else {
            return Ok(Step::same(format!("unchanged {}", crisis.id)));
        };
        let declaration = hook.rules.declaration(signal);
        let ctx = Self::context(name, key, &declaration, Self::hook_actor(name));
        let quiet = quiet_change(&update, &hook.settings.notify_on);
        let applied = match &quiet {
            Some(_) => self.service.update_quietly(crisis.id, update, ctx).await,
            None => self.service.update(crisis.id, update, ctx).await,
        };
        match applied {
            Ok(_) => Ok(Step::changed(match quiet {
                Some(fields) => format!(
                    "updated {} quietly: only {fields} changed, which notify_on does not count; nothing sent",
                    crisis.id
                ),
                None => format!("updated {}", crisis.id),
            })),
            Err(ServiceError::Domain(err)) => {
                Ok(Step::same(format!("not updated {}: {err}", crisis.id)))
            }
            Err(err) => Err(err),
        }
    }

    /// A signal about an incident that is held or proposed: its
    /// declaration follows what the source says now.
    async fn refresh_pending(
        &self,
        hook: &Hook,
        signal: &Signal,
        mut pending: Pending,
    ) -> Result<Step, ServiceError> {
        let wanted = hook.rules.refresh(signal, &pending.declaration);
        if wanted == pending.declaration {
            return Ok(Step::same(format!(
                "unchanged {} ({})",
                pending.id,
                pending.state.as_str()
            )));
        }
        pending.declaration = wanted;
        pending.updated_at = self.clock.now();
        self.store.save_pending(&pending).await?;
        Ok(Step::changed(format!(
            "{} {} updated",
            pending.state.as_str(),
            pending.id
        )))
    }

    /// A new incident: declared at once, or held for `declare_after`, or
    /// proposed for a person to confirm, unless the rules filter it.
    async fn new_incident(
        &self,
        hook: &Hook,
        signal: &Signal,
        opened: &mut u32,
    ) -> Result<Step, ServiceError> {
        let name = hook.name();
        let key = signal.key.as_str();
        if signal.state == SignalState::Continuing {
            return Ok(Step::same(format!(
                "ignored {key}: not a known incident (only a new one declares)"
            )));
        }
        if let Some(reason) = hook.rules.refusal(signal) {
            return Ok(Step::same(format!("filtered {key}: {reason}")));
        }
        let declaration = hook.rules.declaration(signal);
        if let Err(err) = declaration.validate() {
            return Ok(Step::same(format!("not declared {key}: {err}")));
        }
        let id = CrisisId::new();
        let hold = hook.settings.declare_after;
        if !hold.is_zero() || hook.settings.mode == HookMode::Propose {
            return self.hold(hook, signal, id, declaration, None).await;
        }
        let now = self.clock.now();
        if let Some(storm) = self.storm.refusal(&hook.settings, *opened, now) {
            return self.hold(hook, signal, id, declaration, Some(storm)).await;
        }
        let ctx = Self::context(name, key, &declaration, Self::hook_actor(name));
        self.service.declare_as(id, declaration, ctx).await?;
        *opened += 1;
        self.storm.opened(now);
        Ok(Step::changed(format!("declared {id}")))
    }

    /// Stores a declaration held until `declare_after` has passed, or
    /// proposed until someone confirms it: by the hook's mode, or because
    /// of a storm (`storm` says why; it is proposed at once).
    async fn hold(
        &self,
        hook: &Hook,
        signal: &Signal,
        id: CrisisId,
        declaration: Declaration,
        storm: Option<String>,
    ) -> Result<Step, ServiceError> {
        let now = self.clock.now();
        let hold = hook.settings.declare_after;
        let due_at = (!hold.is_zero() && storm.is_none())
            .then(|| now + chrono::TimeDelta::from_std(hold).unwrap_or(chrono::TimeDelta::zero()));
        let state = if due_at.is_some() {
            PendingState::Held
        } else {
            PendingState::Proposed
        };
        let pending = Pending {
            id,
            hook: hook.name().to_owned(),
            external_id: signal.key.clone(),
            state,
            declaration,
            due_at,
            created_at: now,
            updated_at: now,
            decided_by: None,
        };
        self.store.save_pending(&pending).await?;
        self.wake.notify_one();
        Ok(Step::changed(match (due_at, storm) {
            (Some(at), _) => format!("held {id} until {}", at.to_rfc3339()),
            (None, Some(why)) => {
                format!("proposed {id}: {why}; `crisisd confirm {id}` declares it")
            }
            (None, None) => format!("proposed {id}: `crisisd confirm {id}` declares it"),
        }))
    }

    /// Declares (or proposes) the holds that are due. False when one could
    /// not be handled and should be tried again later.
    pub async fn fire_due(&self) -> bool {
        let _one_at_a_time = self.lock.lock().await;
        let due = match self.store.due_holds(self.clock.now()).await {
            Ok(due) => due,
            Err(err) => {
                warn!(error = %err, "Could not read the held webhook incidents.");
                return false;
            }
        };
        let mut all_done = true;
        for pending in due {
            if let Err(err) = self.fire(pending).await {
                warn!(error = %err, "Could not declare a held webhook incident; will try again.");
                all_done = false;
            }
        }
        all_done
    }

    async fn fire(&self, mut pending: Pending) -> Result<(), ServiceError> {
        let id = pending.id;
        pending.updated_at = self.clock.now();
        let source = link_source(&pending.hook);
        // A previous run may have declared it and stopped before noting so.
        let linked = self
            .links
            .source_link(&source, &pending.external_id)
            .await?;
        let Some(hook) = self.hooks.get(&pending.hook) else {
            pending.state = PendingState::Discarded;
            pending.decided_by = Some("crisisd: the hook is no longer configured".into());
            warn!(hook = %pending.hook, %id, "A held webhook incident was dropped: its hook is no longer configured.");
            self.store.save_pending(&pending).await?;
            return Ok(());
        };
        if linked.is_some() {
            pending.state = PendingState::Declared;
        } else if hook.settings.mode == HookMode::Propose {
            pending.state = PendingState::Proposed;
            info!(hook = %pending.hook, %id, "A held webhook incident is now proposed; `crisisd confirm` declares it.");
        } else if let Some(storm) = self.storm.refusal(&hook.settings, 0, pending.updated_at) {
            pending.state = PendingState::Proposed;
            info!(hook = %pending.hook, %id, %storm, "A held webhook incident is proposed instead of declared; `crisisd confirm` declares it.");
        } else {
            let ctx = Self::context(
                &pending.hook,
                &pending.external_id,
                &pending.declaration,
                Self::hook_actor(&pending.hook),
            );
            match self
                .service
                .declare_as(id, pending.declaration.clone(), ctx)
                .await
            {
                // Stopping: declared, and its fan-out resumes at the next start.
                Ok(_) | Err(ServiceError::Stopping) => {
                    pending.state = PendingState::Declared;
                    self.storm.opened(pending.updated_at);
                }
                Err(ServiceError::Domain(err)) => {
                    pending.state = PendingState::Discarded;
                    pending.decided_by = Some(format!("crisisd: cannot be declared: {err}"));
                }
                Err(err) => return Err(err),
            }
        }
        self.store.save_pending(&pending).await?;
        Ok(())
    }

    /// Declares a held or proposed crisis now, with its id.
    pub async fn confirm(
        &self,
        id: CrisisId,
        actor: Actor,
    ) -> Result<TransitionOutcome, DecisionError> {
        let _one_at_a_time = self.lock.lock().await;
        let mut pending = self.open(id).await?;
        pending.decided_by = Some(actor.to_string());
        pending.updated_at = self.clock.now();
        // Declared already, by a run that stopped before noting it: say so
        // rather than fail on the id forever.
        if self.crises.crisis(id).await?.is_some() {
            pending.state = PendingState::Confirmed;
            self.store.save_pending(&pending).await?;
            return Err(DecisionError::NotOpen {
                id,
                state: "already declared",
            });
        }
        let ctx = Self::context(
            &pending.hook,
            &pending.external_id,
            &pending.declaration,
            actor.clone(),
        );
        let applied = self
            .service
            .declare_as(id, pending.declaration.clone(), ctx)
            .await?;
        pending.state = PendingState::Confirmed;
        self.store.save_pending(&pending).await?;
        match applied {
            Applied::New(outcome) => Ok(outcome),
            Applied::Replayed { .. } => Err(DecisionError::NotOpen {
                id,
                state: "already declared",
            }),
        }
    }

    /// Drops a held or proposed crisis: nothing is sent, ever.
    pub async fn discard(&self, id: CrisisId, actor: Actor) -> Result<Pending, DecisionError> {
        let _one_at_a_time = self.lock.lock().await;
        let mut pending = self.open(id).await?;
        pending.state = PendingState::Discarded;
        pending.decided_by = Some(actor.to_string());
        pending.updated_at = self.clock.now();
        self.store.save_pending(&pending).await?;
        info!(%id, by = %actor, "A proposed crisis was discarded.");
        Ok(pending)
    }

    async fn open(&self, id: CrisisId) -> Result<Pending, DecisionError> {
        let pending = self
            .store
            .pending(id)
            .await?
            .ok_or(DecisionError::NotFound(id))?;
        if !pending.state.is_open() {
            return Err(DecisionError::NotOpen {
                id,
                state: pending.state.as_str(),
            });
        }
        Ok(pending)
    }

    /// Runs the hold timer until `shutdown`: each hold is declared when it
    /// is due, also after a restart; while `leadership` says this daemon
    /// leads (among daemons sharing a store, one fires them; the others
    /// look again every `NOT_LEADING_POLL`).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, leadership: Leadership) {
        loop {
            if !leadership.is_leading() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(NOT_LEADING_POLL) => {}
                }
                continue;
            }
            let ok = self.fire_due().await;
            let wait = match self.store.next_hold().await {
                Ok(Some(at)) => until(at, self.clock.now()),
                Ok(None) => Duration::from_secs(3600),
                Err(_) => RETRY_AFTER,
            };
            // After a failure, not in a tight loop on the same hold.
            let wait = if ok { wait } else { wait.max(RETRY_AFTER) };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => {}
            }
        }
    }
}

const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often a daemon that does not lead checks whether it does now.
const NOT_LEADING_POLL: Duration = Duration::from_secs(1);

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// What applying one signal did.
struct Step {
    changed: bool,
    line: String,
}

impl Step {
    fn changed(line: String) -> Self {
        Self {
            changed: true,
            line,
        }
    }

    fn same(line: String) -> Self {
        Self {
            changed: false,
            line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(toml_text: &str) -> HookSettings {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn every_problem_of_a_hook_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "not-a-whsec!").unwrap();
        let bad = hook(&format!(
            "name = \"a b\"\nsource = \"standard\"\nsecret_file = \"{}\"\nmatchers = ['x']\ndeclare_after = \"25h\"\nsignature_header = \"X\"\n",
            secret.display()
        ));
        let problems = Hook::build(&bad).unwrap_err();
        let text = problems.join("\n");
        for expected in [
            "a name is 1 to 64",
            "declare_after",
            "signature_header",
            "matcher `x`",
            "whsec_",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        let unsigned = hook("name = \"s\"\nsource = \"statuspage\"\nauth = \"signature\"\n");
        let text = Hook::build(&unsigned).unwrap_err().join("\n");
        assert!(
            text.contains("does not sign") && text.contains("secret_env or secret_file"),
            "{text}"
        );
    }
}
