//! Bearer tokens named in the config, compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::secret::Secret;

/// A token the API accepts, by name.
#[derive(Debug, Clone)]
pub struct NamedToken {
    pub name: String,
    /// SHA-256 of the token: comparing digests keeps the comparison
    /// constant-time whatever the lengths.
    digest: [u8; 32],
}

impl NamedToken {
    pub fn new(name: impl Into<String>, secret: &Secret) -> Self {
        Self {
            name: name.into(),
            digest: Sha256::digest(secret.expose().as_bytes()).into(),
        }
    }
}

/// Which token, if any, `presented` is. Every token is compared, so the
/// time taken does not say which one nearly matched.
pub fn authenticate<'a>(tokens: &'a [NamedToken], presented: &str) -> Option<&'a str> {
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for token in tokens {
        if bool::from(token.digest.ct_eq(&digest)) {
            found = Some(token.name.as_str());
        }
    }
    found
}

/// The name of the token that authenticated this request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token_name: String,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Unauthorized)?;
        authenticate(&state.tokens.load(), presented)
            .map(|name| Authenticated {
                token_name: name.to_owned(),
            })
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matching_token_is_named_and_others_are_refused() {
        let tokens = vec![
            NamedToken::new("ops", &Secret::new("s3cret-ops")),
            NamedToken::new("ci", &Secret::new("s3cret-ci")),
        ];
        assert_eq!(authenticate(&tokens, "s3cret-ci"), Some("ci"));
        assert_eq!(authenticate(&tokens, "s3cret"), None);
        assert_eq!(authenticate(&tokens, ""), None);
    }
}
