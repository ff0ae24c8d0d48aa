//! Everything built from the config before the store or the network is
//! touched: each section's own checks, then what needs loading (templates,
//! the audience file, the channels, the hooks, the follow-up plans), every
//! problem reported at once. `check-config` stops here.

use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderValue;
use chrono::Utc;
use tracing::info;

use super::StartupError;
use crate::channels::{self, Channel};
use crate::config::Settings;
use crate::domain::audience::Audience;
use crate::domain::consent::UnsubscribeSigner;
use crate::domain::follow_up::{FollowUps, Library};
use crate::http::NamedToken;
use crate::intake::Hook;
use crate::plan::{PlanInputs, UnsubscribeLinks};
use crate::render::{CompanyView, Renderer};
use crate::secret::{Secret, SecretSource};

/// Everything built from the config before touching the store or the
/// network; `check-config` stops here.
pub struct Prepared {
    pub settings: Settings,
    pub inputs: PlanInputs,
    pub channels: Vec<Arc<dyn Channel>>,
    pub tokens: Vec<NamedToken>,
    /// The token `/metrics` requires, when `[metrics]` names one.
    pub metrics_token: Option<NamedToken>,
    pub cors_origins: Vec<HeaderValue>,
    /// `[[hooks]]`, their secrets read and rules compiled.
    pub hooks: Vec<Hook>,
    pub follow_ups: Arc<FollowUps>,
}

/// Checks a config file the way `serve` would, without starting anything.
pub fn check_config(path: &Path) -> Result<Prepared, StartupError> {
    prepare(Settings::load(path)?)
}

/// Reads and prepares the config at `path` as a start would, and writes
/// what it asks to be generated: what a reload applies.
pub fn load_and_prepare(path: &Path) -> Result<Prepared, StartupError> {
    let mut prepared = prepare(Settings::load(path)?)?;
    prepared.write_generated()?;
    Ok(prepared)
}

/// The token `/metrics` requires, when `[metrics]` names one.
fn metrics_token(settings: &Settings, problems: &mut Vec<String>) -> Option<NamedToken> {
    let source = settings.metrics.token();
    source
        .is_set()
        .then(|| source.read())
        .transpose()
        .map_err(|err| problems.push(format!("metrics: {err}")))
        .ok()
        .flatten()
        .map(|secret| NamedToken::new("metrics", &secret))
}

/// Validates the whole configuration, templates and audience included,
/// reporting every problem at once.
pub fn prepare(settings: Settings) -> Result<Prepared, StartupError> {
    let mut problems = settings.problems();
    let default_locale = settings.locales.default.clone();
    let cors_origins = settings.banner.cors_origins(&mut problems);
    let tokens = settings
        .api
        .tokens(&mut problems)
        .iter()
        .map(|(name, secret)| NamedToken::new(name, secret))
        .collect();
    let metrics_token = metrics_token(&settings, &mut problems);
    let renderer = Renderer::load(&settings.templates.dir, &default_locale)
        .map_err(|err| problems.push(format!("templates: {err}")))
        .ok();
    let audience = Audience::load(&settings.audience.file, &default_locale).unwrap_or_else(|err| {
        problems.push(format!("audience: {err}"));
        Audience::default()
    });
    let drill_audience = match &settings.audience.drill_file {
        Some(file) => Audience::load(file, &default_locale).unwrap_or_else(|err| {
            problems.push(format!("audience.drill_file: {err}"));
            Audience::default()
        }),
        None => Audience::default(),
    };
    let channels = channels::build_all(&settings.channels).unwrap_or_else(|errors| {
        problems.extend(errors.iter().map(|e| format!("channels: {e}")));
        Vec::new()
    });
    let unsubscribe = settings.consent.as_ref().and_then(|consent| {
        Some(UnsubscribeLinks {
            base_url: settings.server.public_url(),
            signer: UnsubscribeSigner::new(consent.key(&mut problems)?),
        })
    });
    let hooks = Hook::build_all(&settings).unwrap_or_else(|errors| {
        problems.extend(errors);
        Vec::new()
    });
    let follow_ups = follow_ups(&settings, renderer.as_ref(), &mut problems);
    let (Some(renderer), Some(follow_ups)) = (renderer, follow_ups) else {
        return Err(StartupError::Invalid(problems));
    };
    let inputs = PlanInputs {
        company: CompanyView {
            name: settings.company.name.clone(),
            status_url: settings.company.status_url.clone(),
        },
        directory: settings.directory.clone(),
        audience,
        drill_audience,
        renderer,
        channels: settings.channels.profiles(&default_locale),
        unsubscribe,
        all_clear_to_unreached: settings.dispatch.all_clear_to_unreached,
        availability: Default::default(),
        fallback: settings.fallback.clone(),
        answers: settings.answers.clone(),
    };
    problems.extend(inputs.template_problems(&follow_ups, Utc::now()));
    problems.extend(crate::publish::template_problems(
        &inputs,
        &follow_ups.library,
        Utc::now(),
    ));
    if !problems.is_empty() {
        return Err(StartupError::Invalid(problems));
    }
    Ok(Prepared {
        settings,
        inputs,
        channels,
        tokens,
        metrics_token,
        cors_origins,
        hooks,
        follow_ups: Arc::new(follow_ups),
    })
}

/// The follow-up plans and their resource library, checked against the
/// channels and the locales that have templates.
fn follow_ups(
    settings: &Settings,
    renderer: Option<&Renderer>,
    problems: &mut Vec<String>,
) -> Option<FollowUps> {
    let locales: Vec<String> = renderer
        .map(|r| r.locales().map(str::to_owned).collect())
        .unwrap_or_default();
    let channel_names: Vec<String> = settings.channels.names().map(str::to_owned).collect();
    Library::load(&settings.follow_ups, &settings.locales.default, &locales)
        .and_then(|library| FollowUps::build(&settings.follow_ups, library, &channel_names))
        .map_err(|found| problems.extend(found))
        .ok()
}

impl Prepared {
    /// Writes what the config asks to be generated on first start (API
    /// tokens, the unsubscribe signing key) and the spool directories; a
    /// start and a reload do this, `check-config` does not.
    pub fn write_generated(&mut self) -> Result<(), StartupError> {
        self.tokens.extend(generate_missing_tokens(&self.settings)?);
        generate_consent_key(&self.settings, &mut self.inputs)?;
        create_spool_dirs(&self.settings)
    }
}

/// Writes a random token where the config asks for one to be generated and
/// none exists yet; returns the tokens it wrote.
fn generate_missing_tokens(settings: &Settings) -> Result<Vec<NamedToken>, StartupError> {
    let mut generated = Vec::new();
    for token in settings.api.tokens.iter().filter(|t| t.generate_if_missing) {
        if let Some(value) = generate_secret_file(&token.secret(), token.token_file.as_deref())? {
            info!(name = %token.name, "Generated an API token; the CLI reads it from its token_file.");
            generated.push(NamedToken::new(&token.name, &value));
        }
    }
    Ok(generated)
}

/// Writes 32 random bytes, hex, to `path` (mode 0600) when the secret's
/// file does not exist yet; returns the new secret.
fn generate_secret_file(
    source: &SecretSource,
    path: Option<&Path>,
) -> Result<Option<Secret>, StartupError> {
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let (Some(path), Some(resolved)) = (path, source.resolved_file()) else {
        return Ok(None);
    };
    if resolved.exists() {
        return Ok(None);
    }
    let io_err = |source| StartupError::SecretFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(value.as_bytes()).map_err(io_err)?;
    Ok(Some(Secret::new(value)))
}

/// The unsubscribe signing key, generated on first start when asked.
fn generate_consent_key(settings: &Settings, inputs: &mut PlanInputs) -> Result<(), StartupError> {
    let Some(consent) = settings.consent.as_ref().filter(|c| c.generate_if_missing) else {
        return Ok(());
    };
    if let Some(key) =
        generate_secret_file(&consent.signing_key(), consent.signing_key_file.as_deref())?
    {
        info!("Generated the key that signs unsubscribe links.");
        inputs.unsubscribe = Some(UnsubscribeLinks {
            base_url: settings.server.public_url(),
            signer: UnsubscribeSigner::new(key),
        });
    }
    Ok(())
}

/// Spool directories are made at start, not by `check-config`.
fn create_spool_dirs(settings: &Settings) -> Result<(), StartupError> {
    for dir in settings
        .channels
        .email
        .iter()
        .filter_map(|e| e.spool_dir.as_deref())
    {
        std::fs::create_dir_all(dir).map_err(|source| StartupError::SpoolDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}
