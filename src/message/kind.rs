//! The kinds of channel there are, listed once. Here, in the leaf, so that
//! a channel's profile can carry its kind without depending on the
//! channels that send it; `channels` implements each kind.

/// Calls `$then!` with every kind of channel as `key: Variant` pairs, in
/// the order the config lists them. The `key` is the config section,
/// `[[channels.<key>]]`; the `Variant` names the `ProviderKind` and, in
/// `channels`, the type that implements the kind. Everything per kind (this
/// enum, the `[channels]` section, the builders, the profiles, the inbound
/// SMS secrets) is generated from this list, so adding a provider is its
/// file plus one line here.
macro_rules! with_kinds {
    ($then:ident) => {
        $then! {
            email: Email,
            twilio: Twilio,
            vonage: Vonage,
            sms_gateway: SmsGateway,
            mastodon: Mastodon,
            bluesky: Bluesky,
            slack: Slack,
            discord: Discord,
            teams: Teams,
            telegram: Telegram,
        }
    };
}
pub(crate) use with_kinds;

macro_rules! provider_kind {
    ($($key:ident: $variant:ident,)*) => {
        /// A kind of channel: email or one of the providers, as in
        /// `[[channels.<kind>]]`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProviderKind {
            $($variant,)*
        }

        impl ProviderKind {
            /// Every kind, in config order.
            pub const ALL: &'static [ProviderKind] = &[$(ProviderKind::$variant,)*];

            /// The config key: `twilio`, `sms_gateway`…
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderKind::$variant => stringify!($key),)*
                }
            }
        }
    };
}
with_kinds!(provider_kind);

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no kind of channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a kind of channel")]
pub struct UnknownKind(pub String);

impl std::str::FromStr for ProviderKind {
    type Err = UnknownKind;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == key)
            .ok_or_else(|| UnknownKind(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_from_its_config_key_and_nothing_else_does() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(*kind));
        }
        assert_eq!(
            "sms_gateway".parse::<ProviderKind>(),
            Ok(ProviderKind::SmsGateway)
        );
        assert_eq!(
            "sms".parse::<ProviderKind>(),
            Err(UnknownKind("sms".into()))
        );
        assert_eq!(ProviderKind::ALL.len(), 10);
    }
}
