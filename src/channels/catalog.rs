//! What each kind of channel is, and everything the list of kinds
//! generates: the `[channels]` section, building every configured channel,
//! the profiles planning uses, the inbound SMS secrets.

use std::collections::HashMap;
use std::sync::Arc;

// The kinds' types, by the names `with_kinds!` gives them.
use super::chat::*;
use super::email::EmailChannel as Email;
use super::sms::*;
use super::social::*;

use super::http::{HttpChannel, Provider};
use super::settings::{ChannelCommon, RateLimit, rate_limits};
use super::{Channel, ChannelError, ChannelSection, http};
use crate::domain::ChannelName;
use crate::message::kind::with_kinds;
use crate::message::post::LengthRule;
use crate::message::{ChannelProfile, ProviderKind, Reach, TextFamily, TextLimit};
use crate::secret::{Secret, SecretSource};

/// A kind of channel: its section and how its messages are written.
pub trait Kind: 'static {
    /// One `[[channels.<kind>]]` section.
    type Settings: ChannelSection + serde::de::DeserializeOwned + std::fmt::Debug + Clone;
    /// The texts it sends (SMS, social, chat); `None` for email, which has
    /// its own templates.
    const FAMILY: Option<TextFamily>;
    /// Its limit with the standard settings, for a preview before any
    /// channel of the kind is configured.
    const STANDARD_LIMIT: TextLimit;

    /// The limit of a configured channel: what its section sets, else
    /// the standard one.
    fn limit(settings: &Self::Settings) -> TextLimit {
        settings.limit().unwrap_or(Self::STANDARD_LIMIT)
    }

    /// The secret that signs the provider's inbound SMS webhooks, for the
    /// kinds that deliver replies to us.
    fn inbound_secret(_settings: &Self::Settings) -> Option<SecretSource> {
        None
    }

    /// The secret that authenticates the provider's delivery receipts, for
    /// the kinds that send them to us.
    fn receipt_secret(_settings: &Self::Settings) -> Option<SecretSource> {
        None
    }
}

/// A limit of at most `max`, counted by `rule`.
pub const fn length(rule: LengthRule, max: usize) -> TextLimit {
    TextLimit::Length { rule, max }
}

/// How a channel of a kind is built from its section.
pub trait Build: Kind {
    fn build(
        settings: &Self::Settings,
        http: &reqwest::Client,
    ) -> Result<Arc<dyn Channel>, ChannelError>;
}

impl<P: Provider> Build for P {
    fn build(
        settings: &Self::Settings,
        http: &reqwest::Client,
    ) -> Result<Arc<dyn Channel>, ChannelError> {
        Ok(Arc::new(HttpChannel::<P>::from_settings(
            settings,
            http.clone(),
        )?))
    }
}

/// One configured channel, whatever its kind, with its section.
pub trait Configured<'a> {
    fn kind(&self) -> ProviderKind;
    fn section(&self) -> &'a dyn ChannelSection;
    fn profile(&self, default_locale: &str) -> ChannelProfile;
    fn inbound_secret(&self) -> Option<SecretSource>;
    fn receipt_secret(&self) -> Option<SecretSource>;
    fn build(&self, http: &reqwest::Client) -> Result<Arc<dyn Channel>, ChannelError>;
}

/// A section of the kind `K`.
struct SectionOf<'a, K: Kind> {
    kind: ProviderKind,
    settings: &'a K::Settings,
}

impl<'a, K: Build> Configured<'a> for SectionOf<'a, K> {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn section(&self) -> &'a dyn ChannelSection {
        self.settings
    }

    fn profile(&self, default_locale: &str) -> ChannelProfile {
        let locale = self.settings.locale().unwrap_or(default_locale);
        ChannelProfile {
            name: self.settings.name().to_owned(),
            kind: Some(self.kind),
            reach: reach(K::FAMILY, locale),
            family: K::FAMILY,
            limit: K::limit(self.settings),
        }
    }

    fn inbound_secret(&self) -> Option<SecretSource> {
        K::inbound_secret(self.settings)
    }

    fn receipt_secret(&self) -> Option<SecretSource> {
        K::receipt_secret(self.settings)
    }

    fn build(&self, http: &reqwest::Client) -> Result<Arc<dyn Channel>, ChannelError> {
        K::build(self.settings, http)
    }
}

/// Who a channel's deliveries go to follows from what it sends: emails to
/// each subscriber's address, SMS to each phone, posts and chat messages
/// once, in the channel's language.
fn reach(family: Option<TextFamily>, locale: &str) -> Reach {
    match family {
        None => Reach::Email,
        Some(TextFamily::Sms) => Reach::Phone,
        Some(TextFamily::Social | TextFamily::Chat) => Reach::Broadcast {
            locale: locale.to_owned(),
        },
    }
}

macro_rules! channel_settings {
    ($($key:ident: $variant:ident,)*) => {
        /// The `[channels]` section: `[[channels.<kind>]]`, one array per
        /// kind, so that several channels of a kind (two Mastodon accounts,
        /// a gateway per region) each have their own name and settings.
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ChannelSettings {
            $(
                #[serde(default)]
                pub $key: Vec<<$variant as Kind>::Settings>,
            )*
        }

        impl ChannelSettings {
            /// Every configured channel, in config order by kind.
            pub fn configured(&self) -> Vec<Box<dyn Configured<'_> + '_>> {
                let mut all: Vec<Box<dyn Configured<'_> + '_>> = Vec::new();
                $(
                    all.extend(self.$key.iter().map(|settings| {
                        Box::new(SectionOf::<$variant> {
                            kind: ProviderKind::$variant,
                            settings,
                        }) as Box<dyn Configured<'_> + '_>
                    }));
                )*
                all
            }
        }

        /// Every kind's family and standard limit.
        const STANDARD: &[(ProviderKind, Option<TextFamily>, TextLimit)] = &[
            $((ProviderKind::$variant, <$variant as Kind>::FAMILY, <$variant as Kind>::STANDARD_LIMIT),)*
        ];
    };
}
with_kinds!(channel_settings);

impl ChannelSettings {
    /// What every configured channel has in common, in config order by kind.
    pub fn common(&self) -> Vec<ChannelCommon<'_>> {
        self.configured()
            .iter()
            .map(|channel| {
                let section = channel.section();
                ChannelCommon {
                    kind: channel.kind(),
                    name: section.name(),
                    rate_per_second: section.rate_per_second(),
                    burst: section.burst(),
                }
            })
            .collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.common().into_iter().map(|c| c.name)
    }

    /// Problems of the section as a whole: every channel named, each name
    /// once, at least one channel, and rate limits that make sense.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = std::collections::HashSet::new();
        for name in self.names() {
            if ChannelName::parse(name).is_err() {
                problems.push("channels: a channel has an empty name".to_owned());
            } else if !names.insert(name) {
                problems.push(format!("channels: the name `{name}` is used twice"));
            }
        }
        if names.is_empty() {
            problems.push(
                "channels: no channel is configured; add at least one [[channels.email]]"
                    .to_owned(),
            );
        }
        if let Err(problem) = self.rate_limits() {
            problems.push(format!("channels: {problem}"));
        }
        problems
    }

    /// Channels whose send may outlast most of `lease`: a send still
    /// running when its lease ends may be taken over and sent again by
    /// another worker or daemon, and its outcome no longer counts. A send
    /// must end within half the lease.
    pub fn lease_problems(&self, lease: std::time::Duration) -> Vec<String> {
        self.configured()
            .iter()
            .filter_map(|channel| {
                let section = channel.section();
                let timeout = section.send_timeout()?;
                (timeout.saturating_mul(2) > lease).then(|| {
                    format!(
                        "channels `{}`: its timeout ({}) is not comfortably shorter than \
                         dispatch.lease ({}); a send must end within half the lease, or \
                         another daemon may take it over and send it again",
                        section.name(),
                        humantime::format_duration(timeout),
                        humantime::format_duration(lease)
                    )
                })
            })
            .collect()
    }

    /// Rate limits by channel name, for the channels that have one.
    pub fn rate_limits(&self) -> Result<std::collections::BTreeMap<String, RateLimit>, String> {
        rate_limits(self.common())
    }

    /// What planning needs to know about every configured channel.
    pub fn profiles(&self, default_locale: &str) -> Vec<ChannelProfile> {
        self.configured()
            .iter()
            .map(|channel| channel.profile(default_locale))
            .collect()
    }

    /// Whether a configured channel takes inbound SMS webhooks whose
    /// signatures need the daemon's public URL (Twilio signs the URL it
    /// calls; Vonage and gateways do not).
    pub fn takes_inbound_sms(&self) -> bool {
        self.configured().iter().any(|channel| {
            channel.kind() == ProviderKind::Twilio && channel.inbound_secret().is_some()
        })
    }

    /// What authenticates each channel's inbound SMS webhooks, with its
    /// kind, by channel name, for the channels whose secret can be read.
    pub fn inbound_sms_secrets(&self) -> HashMap<String, ReceiptSecret> {
        self.configured()
            .iter()
            .filter_map(|channel| {
                let secret = channel.inbound_secret()?.read().ok()?;
                let kind = channel.kind();
                Some((
                    channel.section().name().to_owned(),
                    ReceiptSecret { kind, secret },
                ))
            })
            .collect()
    }
}

impl ChannelSettings {
    /// What authenticates each channel's delivery receipts, by channel
    /// name, for the channels whose secret can be read.
    pub fn receipt_secrets(&self) -> HashMap<String, ReceiptSecret> {
        self.configured()
            .iter()
            .filter_map(|channel| {
                let secret = channel.receipt_secret()?.read().ok()?;
                let name = channel.section().name().to_owned();
                Some((
                    name,
                    ReceiptSecret {
                        kind: channel.kind(),
                        secret,
                    },
                ))
            })
            .collect()
    }
}

/// The secret a channel's receipts (or inbound messages) are checked
/// with, and its kind (a request is refused on another kind's route).
#[derive(Debug, Clone)]
pub struct ReceiptSecret {
    pub kind: ProviderKind,
    pub secret: Secret,
}

/// Builds every configured channel; reports every channel that cannot be
/// built, not only the first.
pub fn build_all(settings: &ChannelSettings) -> Result<Vec<Arc<dyn Channel>>, Vec<ChannelError>> {
    let http = http::client().map_err(|e| vec![e])?;
    let (channels, errors): (Vec<_>, Vec<_>) = settings
        .configured()
        .iter()
        .map(|channel| channel.build(&http))
        .partition(Result::is_ok);
    if errors.is_empty() {
        Ok(channels.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}

/// A kind of channel (`twilio`, `email`…) or a family (`sms`, `social`,
/// `chat`) with its standard limits, for previewing a channel that is not
/// configured yet. A family has the tightest limit of its kinds: a message
/// that fits it fits them all.
pub fn standard_profile(kind_or_family: &str, default_locale: &str) -> Option<ChannelProfile> {
    let (family, limit) = match kind_or_family.parse::<ProviderKind>() {
        Ok(kind) => STANDARD
            .iter()
            .find(|(standard, _, _)| *standard == kind)
            .map(|(_, family, limit)| (*family, *limit))?,
        Err(_) => {
            let family = TextFamily::ALL
                .into_iter()
                .find(|family| family.as_str() == kind_or_family)?;
            let limit = STANDARD
                .iter()
                .filter(|(_, of, _)| *of == Some(family))
                .map(|(_, _, limit)| *limit)
                .min_by_key(allowance)?;
            (Some(family), limit)
        }
    };
    Some(ChannelProfile {
        name: kind_or_family.to_owned(),
        kind: None,
        reach: reach(family, default_locale),
        family,
        limit,
    })
}

/// How much a limit lets through, to find the tightest of a family.
fn allowance(limit: &TextLimit) -> usize {
    match limit {
        TextLimit::Unlimited => usize::MAX,
        TextLimit::SmsSegments { max } | TextLimit::Length { max, .. } => *max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broadcast(locale: &str) -> Reach {
        Reach::Broadcast {
            locale: locale.to_owned(),
        }
    }

    #[test]
    fn a_kind_or_family_previews_with_its_standard_limits_and_a_family_with_the_tightest() {
        use TextFamily::{Chat, Sms, Social};
        let sms = (Some(Sms), TextLimit::SmsSegments { max: 3 }, Reach::Phone);
        let bluesky = (
            Some(Social),
            length(LengthRule::Graphemes, 300),
            broadcast("bn"),
        );
        let discord = (Some(Chat), length(LengthRule::Chars, 2000), broadcast("bn"));
        let chat_4000 = (Some(Chat), length(LengthRule::Chars, 4000), broadcast("bn"));
        let table = [
            ("email", (None, TextLimit::Unlimited, Reach::Email)),
            ("sms", sms.clone()),
            ("twilio", sms.clone()),
            ("vonage", sms.clone()),
            ("sms_gateway", sms),
            (
                "mastodon",
                (
                    Some(Social),
                    length(LengthRule::Mastodon, 500),
                    broadcast("bn"),
                ),
            ),
            ("social", bluesky.clone()),
            ("bluesky", bluesky),
            ("chat", discord.clone()),
            ("discord", discord),
            ("slack", chat_4000.clone()),
            ("teams", chat_4000),
            (
                "telegram",
                (Some(Chat), length(LengthRule::Utf16, 4096), broadcast("bn")),
            ),
        ];
        for (name, (family, limit, reach)) in table {
            assert_eq!(
                standard_profile(name, "bn"),
                Some(ChannelProfile {
                    name: name.to_owned(),
                    kind: None,
                    reach,
                    family,
                    limit,
                }),
                "{name}"
            );
        }
        assert_eq!(standard_profile("pager", "bn"), None);
    }

    const EVERY_KIND: &str = r#"
        [[email]]
        name = "mail"
        from = "Support <support@example.com>"
        transport = "spool"
        [[twilio]]
        name = "twilio"
        account_sid = "AC1"
        from = "+15005550006"
        max_segments = 2
        [[vonage]]
        name = "vonage"
        api_key = "k"
        from = "Example"
        [[sms_gateway]]
        name = "gateway"
        url = "https://gw.example.com"
        [[mastodon]]
        name = "mastodon"
        instance_url = "https://mastodon.example"
        max_characters = 1000
        locale = "pt-BR"
        [[bluesky]]
        name = "bluesky"
        identifier = "crisis.example.com"
        [[slack]]
        name = "slack"
        locale = "bn"
        [[discord]]
        name = "discord"
        [[teams]]
        name = "teams"
        [[telegram]]
        name = "telegram"
        chat_id = "@news"
    "#;

    #[test]
    fn every_configured_channel_has_its_kinds_profile_in_config_order() {
        use TextFamily::{Chat, Sms, Social};
        let settings: ChannelSettings = toml::from_str(EVERY_KIND).unwrap();
        let profile = |name: &str, kind, reach, family, limit| ChannelProfile {
            name: name.to_owned(),
            kind: Some(kind),
            reach,
            family,
            limit,
        };
        let sms = |max| TextLimit::SmsSegments { max };
        let chars = |max| length(LengthRule::Chars, max);
        use ProviderKind as K;
        assert_eq!(
            settings.profiles("en"),
            vec![
                profile("mail", K::Email, Reach::Email, None, TextLimit::Unlimited),
                profile("twilio", K::Twilio, Reach::Phone, Some(Sms), sms(2)),
                profile("vonage", K::Vonage, Reach::Phone, Some(Sms), sms(3)),
                profile("gateway", K::SmsGateway, Reach::Phone, Some(Sms), sms(3)),
                profile(
                    "mastodon",
                    K::Mastodon,
                    broadcast("pt-BR"),
                    Some(Social),
                    length(LengthRule::Mastodon, 1000)
                ),
                profile(
                    "bluesky",
                    K::Bluesky,
                    broadcast("en"),
                    Some(Social),
                    length(LengthRule::Graphemes, 300)
                ),
                profile("slack", K::Slack, broadcast("bn"), Some(Chat), chars(4000)),
                profile(
                    "discord",
                    K::Discord,
                    broadcast("en"),
                    Some(Chat),
                    chars(2000)
                ),
                profile("teams", K::Teams, broadcast("en"), Some(Chat), chars(4000)),
                profile(
                    "telegram",
                    K::Telegram,
                    broadcast("en"),
                    Some(Chat),
                    length(LengthRule::Utf16, 4096)
                ),
            ]
        );
        let kinds: Vec<ProviderKind> = settings.common().iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ProviderKind::ALL);
    }

    #[test]
    fn only_twilio_channels_take_inbound_sms_and_their_readable_tokens_sign_them() {
        let settings: ChannelSettings = toml::from_str(EVERY_KIND).unwrap();
        assert!(settings.takes_inbound_sms());
        // Its token cannot be read: no secret to check with.
        assert!(settings.inbound_sms_secrets().is_empty());

        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), "auth-token").unwrap();
        let text = format!(
            "[[twilio]]\nname = \"sms\"\naccount_sid = \"AC1\"\nfrom = \"+1\"\n\
             auth_token_file = \"{}\"\n[[vonage]]\nname = \"v\"\napi_key = \"k\"\nfrom = \"f\"\n",
            token.path().display()
        );
        let settings: ChannelSettings = toml::from_str(&text).unwrap();
        let secrets = settings.inbound_sms_secrets();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets["sms"].secret.expose(), "auth-token");
        assert_eq!(secrets["sms"].kind, ProviderKind::Twilio);

        let without: ChannelSettings =
            toml::from_str("[[vonage]]\nname = \"v\"\napi_key = \"k\"\nfrom = \"f\"\n").unwrap();
        assert!(!without.takes_inbound_sms());
    }
}
