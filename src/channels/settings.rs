//! The settings every `[[channels.<kind>]]` section shares, declared once:
//! `section!` writes them into each kind's settings struct, since serde's
//! `flatten` does not combine with `deny_unknown_fields`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::message::{ProviderKind, TextLimit};
use crate::secret::SecretSource;

/// What every channel section has, whatever its kind.
pub trait ChannelSection {
    /// Unique among all channels; deliveries name their channel by it.
    fn name(&self) -> &str;
    fn concurrency(&self) -> usize;
    fn rate_per_second(&self) -> Option<f64>;
    fn burst(&self) -> Option<u32>;
    /// The language a broadcast channel writes in, when set; channels that
    /// write to each reader in the reader's language have none.
    fn locale(&self) -> Option<&str> {
        None
    }
    /// The limit the section sets for its messages, when it sets one.
    fn limit(&self) -> Option<TextLimit> {
        None
    }
    /// The longest one send may take (the provider's request timeout, or
    /// SMTP's), which a lease must comfortably outlast; none for a
    /// channel that writes locally (a spool directory).
    fn send_timeout(&self) -> Option<Duration> {
        None
    }
}

/// What every HTTP provider's section adds.
pub trait HttpSection: ChannelSection {
    /// How long one request may take, answer included.
    fn timeout(&self) -> Duration;
}

/// Declares a channel section: `name` first, the kind's own fields, then
/// the shared `concurrency`, `rate_per_second`, `burst` and, for HTTP
/// providers, `timeout`. The audience says the concurrency default and
/// whether the section has a `locale`:
///
/// - `phone`: one delivery per subscriber with a phone number (SMS), at
///   most `max_segments` long,
/// - `broadcast`: one delivery per announcement, written in `locale`
///   (where `@locale,` stands among the fields),
/// - `email`: one delivery per subscriber with an email address, sent over
///   SMTP (no HTTP timeout).
macro_rules! section {
    (
        $(#[$doc:meta])*
        pub struct $name:ident: phone {
            $($(#[$meta:meta])* pub $field:ident: $type:ty,)*
        }
    ) => {
        $crate::channels::settings::section!(@http [$(#[$doc])*] $name,
            "crate::channels::settings::default_phone_concurrency",
            {
                $($(#[$meta])* pub $field: $type,)*
                /// Most segments a message may take; a longer one is sent
                /// in its short form.
                #[serde(default = "crate::channels::settings::default_max_segments")]
                pub max_segments: usize,
            },
            {
                fn limit(&self) -> Option<$crate::message::TextLimit> {
                    Some($crate::message::TextLimit::SmsSegments {
                        max: self.max_segments,
                    })
                }
            });
    };
    (
        $(#[$doc:meta])*
        pub struct $name:ident: broadcast {
            $($(#[$meta:meta])* pub $field:ident: $type:ty,)*
            @locale,
            $($(#[$tail_meta:meta])* pub $tail_field:ident: $tail_type:ty,)*
        }
    ) => {
        $crate::channels::settings::section!(@http [$(#[$doc])*] $name,
            "crate::channels::settings::default_broadcast_concurrency",
            {
                $($(#[$meta])* pub $field: $type,)*
                /// The language posts are written in. Default: the default
                /// locale.
                pub locale: Option<String>,
                $($(#[$tail_meta])* pub $tail_field: $tail_type,)*
            },
            {
                fn locale(&self) -> Option<&str> {
                    self.locale.as_deref()
                }
            });
    };
    (
        $(#[$doc:meta])*
        pub struct $name:ident: email {
            $($(#[$meta:meta])* pub $field:ident: $type:ty,)*
        }
    ) => {
        $crate::channels::settings::section!(@define [$(#[$doc])*] $name,
            "crate::channels::settings::default_email_concurrency",
            { $($(#[$meta])* pub $field: $type,)* },
            {},
            {
                fn send_timeout(&self) -> Option<::std::time::Duration> {
                    self.smtp.as_ref().map(|smtp| smtp.timeout)
                }
            });
    };
    (@http [$($doc:tt)*] $name:ident, $concurrency:literal,
        { $($fields:tt)* }, { $($methods:tt)* }) => {
        $crate::channels::settings::section!(@define [$($doc)*] $name, $concurrency,
            { $($fields)* },
            {
                #[serde(
                    default = "crate::channels::settings::default_http_timeout",
                    with = "humantime_serde"
                )]
                pub timeout: ::std::time::Duration,
            },
            {
                $($methods)*
                fn send_timeout(&self) -> Option<::std::time::Duration> {
                    Some(self.timeout)
                }
            });

        impl $crate::channels::HttpSection for $name {
            fn timeout(&self) -> ::std::time::Duration {
                self.timeout
            }
        }
    };
    (@define [$($doc:tt)*] $name:ident, $concurrency:literal,
        { $($fields:tt)* }, { $($tail:tt)* }, { $($methods:tt)* }) => {
        $($doc)*
        #[derive(Debug, Clone, ::serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Unique channel name; appears in status output and metrics.
            pub name: String,
            $($fields)*
            /// Deliveries of this channel sent at once.
            #[serde(default = $concurrency)]
            pub concurrency: usize,
            /// Most messages per second this channel sends (the provider's
            /// account limit); unset: no limit but `concurrency`.
            pub rate_per_second: Option<f64>,
            /// How many may go at once before `rate_per_second` applies.
            /// Default: one second's worth.
            pub burst: Option<u32>,
            $($tail)*
        }

        impl $crate::channels::ChannelSection for $name {
            fn name(&self) -> &str {
                &self.name
            }
            fn concurrency(&self) -> usize {
                self.concurrency
            }
            fn rate_per_second(&self) -> Option<f64> {
                self.rate_per_second
            }
            fn burst(&self) -> Option<u32> {
                self.burst
            }
            $($methods)*
        }
    };
}
pub(crate) use section;

/// Segments an SMS may take unless its channel says otherwise: a longer
/// message costs more and arrives in more pieces.
pub(crate) const MAX_SEGMENTS: usize = 3;

pub(crate) fn default_max_segments() -> usize {
    MAX_SEGMENTS
}

pub(crate) fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(crate) fn default_phone_concurrency() -> usize {
    8
}

pub(crate) fn default_broadcast_concurrency() -> usize {
    1
}

pub(crate) fn default_email_concurrency() -> usize {
    4
}

/// A secret named by an `*_env` / `*_file` pair of settings.
pub(crate) fn secret(env: &Option<String>, file: &Option<PathBuf>) -> SecretSource {
    SecretSource {
        env: env.clone(),
        file: file.clone(),
    }
}

/// Reads a channel's secret; the message names the secret (the channel is
/// named by whoever reports it).
pub(crate) fn read_secret(what: &str, source: &SecretSource) -> Result<String, String> {
    source
        .read()
        .map(|secret| secret.expose().to_owned())
        .map_err(|e| format!("{what}: {e}"))
}

/// A channel's send rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// What every configured channel has in common, whatever its kind.
#[derive(Debug, Clone, Copy)]
pub struct ChannelCommon<'a> {
    pub kind: ProviderKind,
    pub name: &'a str,
    pub rate_per_second: Option<f64>,
    pub burst: Option<u32>,
}

/// Rate limits by channel name, for the channels that have one.
pub(crate) fn rate_limits<'a>(
    channels: impl IntoIterator<Item = ChannelCommon<'a>>,
) -> Result<BTreeMap<String, RateLimit>, String> {
    let mut limits = BTreeMap::new();
    for ChannelCommon {
        name,
        rate_per_second,
        burst,
        ..
    } in channels
    {
        let Some(per_second) = rate_per_second else {
            if burst.is_some() {
                return Err(format!("channel `{name}`: `burst` needs `rate_per_second`"));
            }
            continue;
        };
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "channel `{name}`: rate_per_second must be a positive number"
            ));
        }
        let burst =
            burst.unwrap_or_else(|| per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
        if burst == 0 {
            return Err(format!("channel `{name}`: burst must be at least 1"));
        }
        limits.insert(name.to_owned(), RateLimit { per_second, burst });
    }
    Ok(limits)
}
