//! Settings: the TOML configuration, parsed strictly (unknown keys are
//! errors) and validated before anything starts.

mod console;
mod fatigue;
mod hooks;
mod load;
mod receipts;
mod retention;
mod store;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use console::{ConsoleSettings, PreparedTemplate, TrustedHeader, TwoPersonRule};
pub use fatigue::FatigueSettings;
pub use hooks::{GROUP_KEY, HookAuth, HookMode, HookSettings, HookSource, Noteworthy};
pub use load::{ConfigError, DEFAULT_CONFIG_PATH, config_path};
pub use receipts::ReceiptSettings;
pub use retention::RetentionSettings;
pub use store::{DATABASE_URL_ENV, StoreLocation, StoreSettings, redact};

use crate::channels::ChannelSettings;
use crate::domain::directory::ContactEntry;
use crate::domain::follow_up::FollowUpSettings;
use crate::secret::SecretSource;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub company: CompanySettings,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub api: ApiSettings,
    #[serde(default)]
    pub locales: LocaleSettings,
    #[serde(default)]
    pub templates: TemplateSettings,
    pub audience: AudienceSettings,
    #[serde(default)]
    pub directory: Vec<ContactEntry>,
    #[serde(default)]
    pub channels: ChannelSettings,
    #[serde(default)]
    pub dispatch: DispatchSettings,
    #[serde(default)]
    pub banner: BannerSettings,
    #[serde(default)]
    pub flag_file: Option<FlagFileSettings>,
    #[serde(default)]
    pub consent: Option<ConsentSettings>,
    /// Inbound webhooks from status pages and alerting systems.
    #[serde(default)]
    pub hooks: Vec<HookSettings>,
    #[serde(default)]
    pub health: HealthSettings,
    #[serde(default)]
    pub follow_ups: FollowUpSettings,
    #[serde(default)]
    pub publish: PublishSettings,
    /// The web console at `/console`.
    #[serde(default)]
    pub console: ConsoleSettings,
    #[serde(default)]
    pub crises: CrisisSettings,
    /// `/metrics`: its own listener, a token, how often gauges refresh.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Per severity, the order of contact points readers are tried on.
    #[serde(default)]
    pub fallback: crate::domain::fallback::FallbackPolicy,
    /// Bounces from a Maildir and a SendGrid webhook; hard bounces.
    #[serde(default)]
    pub receipts: ReceiptSettings,
    /// How long finished rows are kept.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Storm and per-reader limits (issue 16).
    #[serde(default)]
    pub fatigue: FatigueSettings,
    /// Questions with numbered answers, and the helpdesk urgent answers
    /// go to.
    #[serde(default)]
    pub answers: crate::domain::question::AnswerSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` here instead of on `[server] listen`.
    pub listen: Option<SocketAddr>,
    /// A bearer token `/metrics` requires (`Authorization: Bearer ...`).
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// How often the gauges read from the store (queue depth, dead
    /// deliveries, active crises) are recomputed, by one task: a scrape
    /// only renders what it last computed.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: None,
            token_env: None,
            token_file: None,
            refresh_interval: Duration::from_secs(5),
        }
    }
}

impl MetricsSettings {
    pub fn token(&self) -> SecretSource {
        SecretSource {
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        }
    }
}

/// How declarations are guarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrisisSettings {
    /// A declaration of the same kind and title as an active crisis
    /// declared this recently is refused as a duplicate (409 naming it)
    /// unless it says it is separate; "0s" turns the guard off.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
}

impl Default for CrisisSettings {
    fn default() -> Self {
        Self {
            duplicate_window: crate::service::DEFAULT_DUPLICATE_WINDOW,
        }
    }
}

impl ServerSettings {
    /// `public_url` without a trailing slash, or `http://` + `listen`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// The key that signs one-click unsubscribe links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSettings {
    pub signing_key_env: Option<String>,
    pub signing_key_file: Option<PathBuf>,
    /// Write a random key to `signing_key_file` when it does not exist.
    #[serde(default)]
    pub generate_if_missing: bool,
}

impl ConsentSettings {
    pub fn signing_key(&self) -> SecretSource {
        SecretSource {
            env: self.signing_key_env.clone(),
            file: self.signing_key_file.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompanySettings {
    /// Shown in every announcement's sign-off.
    pub name: String,
    /// Public page with the full, current text; short forms link to it.
    pub status_url: String,
}

impl Default for CompanySettings {
    fn default() -> Self {
        Self {
            name: "Example Co.".into(),
            status_url: "https://status.example.com".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// How the outside world reaches this daemon (behind a proxy, its
    /// public https URL): unsubscribe links and webhook signatures use it.
    /// Default: `http://` + `listen`.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// From a connection's start, or the end of its last response, until
    /// a request's headers are complete; then it is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection that neither reads nor writes for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections open at once; more wait until one closes. Lowered at
    /// start to fit the descriptor limit.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8750)),
            public_url: None,
            max_body_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    #[serde(default)]
    pub tokens: Vec<ApiTokenSettings>,
}

/// A named bearer token. The name is recorded in the audit trail; the
/// secret itself never appears in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenSettings {
    pub name: String,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// File holding the token (a bare name is looked up in
    /// `$CREDENTIALS_DIRECTORY` first).
    pub token_file: Option<PathBuf>,
    /// Write a fresh random token to `file` when it does not exist yet, so
    /// the embedded defaults work on a new machine without setup.
    #[serde(default)]
    pub generate_if_missing: bool,
}

impl ApiTokenSettings {
    pub fn secret(&self) -> SecretSource {
        SecretSource {
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocaleSettings {
    /// Used when a recipient's locale has no templates.
    pub default: String,
}

impl Default for LocaleSettings {
    fn default() -> Self {
        Self {
            default: "en".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSettings {
    pub dir: PathBuf,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("templates"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceSettings {
    /// CSV with the header `id,name,email,phone,locale,timezone`, and
    /// optionally `region` after them.
    pub file: PathBuf,
    /// The same format: who a drill goes to (staff, a test list). Without
    /// it, a drill cannot be declared.
    #[serde(default)]
    pub drill_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    /// How long a claimed delivery stays leased before another worker may
    /// take it over (a crashed sender's work is reclaimed after this).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Attempts before a transiently failing delivery is declared dead.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often to look for due retries when nothing wakes the dispatcher.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// On stop, how long in-flight sends may take before they are abandoned
    /// (their leases are released and they are sent after the next start).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Consecutive transient failures that pause a channel (circuit
    /// breaker) until its healthcheck passes again.
    pub breaker_threshold: u32,
    /// First pause of a tripped channel; doubles while its healthcheck
    /// keeps failing.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub breaker_max_cooldown: Duration,
    /// Niceness (0-19) of the threads that plan and send fan-outs, so the
    /// API and the banner keep their share of the CPU during one.
    pub nice: u8,
    /// Send the all-clear also to readers whom no earlier message of the
    /// crisis reached on that channel (it was cancelled by the all-clear,
    /// or failed). Off: they were never told, so nothing is cleared.
    pub all_clear_to_unreached: bool,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(10),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            breaker_max_cooldown: Duration::from_secs(300),
            nice: 10,
            all_clear_to_unreached: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BannerSettings {
    /// Origins allowed to fetch the banner from a browser (CORS).
    pub cors_origins: Vec<String>,
    /// `Cache-Control: max-age` for the banner, short so it goes dark fast.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for BannerSettings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_age: Duration::from_secs(15),
        }
    }
}

/// `[publish]`: the crisis page, CAP documents and feeds, and where their
/// static copy is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishSettings {
    /// The static mirror's directory; none is written when unset.
    pub dir: Option<PathBuf>,
    /// The URL the mirror's directory is served at, for the links between
    /// its files; relative links when unset.
    pub base_url: Option<String>,
    /// How long a CAP document is valid after it is sent (`expires`), and
    /// how long a resolved crisis's Cancel stays in the CAP feed.
    #[serde(with = "humantime_serde")]
    pub cap_expires: Duration,
    /// The same files uploaded to an S3-compatible bucket.
    pub s3: Option<S3Settings>,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            dir: None,
            base_url: None,
            cap_expires: Duration::from_secs(24 * 3600),
            s3: None,
        }
    }
}

/// `[publish.s3]`: an S3-compatible bucket that holds a copy of the static
/// mirror's files; its keys come from the environment or files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `https://s3.eu-west-1.amazonaws.com`, or a MinIO's URL.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "S3Settings::default_region")]
    pub region: String,
    /// Put before every file's name, `crisis/` for example.
    #[serde(default)]
    pub prefix: String,
    /// The bucket in the URL's path (MinIO and most S3-compatible servers)
    /// rather than in its host name (AWS).
    #[serde(default)]
    pub path_style: bool,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Each upload, from connecting to the answer.
    #[serde(default = "S3Settings::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl S3Settings {
    fn default_region() -> String {
        "us-east-1".to_owned()
    }

    fn default_timeout() -> Duration {
        Duration::from_secs(10)
    }

    pub fn access_key_id(&self) -> SecretSource {
        SecretSource {
            env: self.access_key_id_env.clone(),
            file: self.access_key_id_file.clone(),
        }
    }

    pub fn secret_access_key(&self) -> SecretSource {
        SecretSource {
            env: self.secret_access_key_env.clone(),
            file: self.secret_access_key_file.clone(),
        }
    }
}

/// What `/readyz` reports on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// How often every channel's healthcheck runs after the one at start.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagFileSettings {
    pub path: PathBuf,
    #[serde(default = "default_flag_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A change is acted on once the file has stayed the same this long,
    /// so a half-written file is not declared and then updated.
    #[serde(default = "default_flag_settle", with = "humantime_serde")]
    pub settle: Duration,
    /// A larger file is refused with a warning, never read.
    #[serde(default = "default_flag_max_bytes")]
    pub max_bytes: u64,
}

fn default_flag_settle() -> Duration {
    Duration::from_secs(2)
}

fn default_flag_max_bytes() -> u64 {
    64 * 1024
}

fn default_flag_poll() -> Duration {
    Duration::from_secs(1)
}
