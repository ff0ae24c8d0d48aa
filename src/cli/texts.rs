//! A crisis's text in several languages on the command line: a flag per
//! locale and field (`--localized bn.title=…`), or a TOML file with the
//! default language's text at the top and a table per locale.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use crate::domain::{TextField, Translations};

/// `--localized` and `--texts`, shared by declare, update, resolve and
/// preview.
#[derive(Debug, Clone, Default, Args)]
pub struct TextArgs {
    /// Text in another language, as LOCALE.FIELD=TEXT with FIELD one of title, summary, message;
    /// repeat for each (`--localized bn.title="পেমেন্ট বন্ধ" --localized bn.summary=…`).
    #[arg(long = "localized", value_name = "LOCALE.FIELD=TEXT", value_parser = parse_localized)]
    pub localized: Vec<(String, TextField, String)>,
    /// A TOML file with `title`, `summary` and `message` in the default language at the top and
    /// a table per locale (`[bn]` with the same keys); flags given as well win.
    #[arg(long, value_name = "FILE")]
    pub texts: Option<PathBuf>,
}

/// What `--texts` and `--localized` said: the default language's text and
/// every locale's. (No `deny_unknown_fields`: serde cannot combine it with
/// `flatten`; a misspelt top-level key still fails, read as a locale whose
/// value is not a table.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Texts {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub message: Option<String>,
    #[serde(flatten)]
    pub localized: Translations,
}

fn parse_localized(raw: &str) -> Result<(String, TextField, String), String> {
    let (key, text) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not LOCALE.FIELD=TEXT"))?;
    let (locale, field) = key
        .rsplit_once('.')
        .ok_or_else(|| format!("`{key}` is not LOCALE.FIELD (e.g. bn.title)"))?;
    let field = TextField::ALL
        .into_iter()
        .find(|f| f.as_str() == field)
        .ok_or_else(|| format!("`{field}` is not title, summary or message"))?;
    if locale.is_empty() {
        return Err(format!("`{key}` names no locale (e.g. bn.{field})"));
    }
    Ok((locale.to_owned(), field, text.to_owned()))
}

impl TextArgs {
    /// The file's text (if any) with the flags laid over it.
    pub fn load(&self) -> anyhow::Result<Texts> {
        let mut texts = match &self.texts {
            Some(path) => {
                let raw = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str::<Texts>(&raw)
                    .with_context(|| format!("{} is not a texts file", path.display()))?
            }
            None => Texts::default(),
        };
        for (locale, field, text) in &self.localized {
            let entry = texts.localized.entry(locale.clone()).or_default();
            let slot = match field {
                TextField::Title => &mut entry.title,
                TextField::Summary => &mut entry.summary,
                TextField::Message => &mut entry.message,
            };
            *slot = Some(text.clone());
        }
        Ok(texts)
    }
}

impl Texts {
    /// The default language's `field`: the flag's, else the file's; an
    /// error naming both when neither gives it.
    pub fn required(
        flag: Option<String>,
        file: Option<String>,
        name: &str,
    ) -> anyhow::Result<String> {
        match flag.or(file) {
            Some(text) => Ok(text),
            None => bail!("give --{name}, or `{name}` at the top of the --texts file"),
        }
    }

    /// Only messages per locale: what an all-clear may carry.
    pub fn messages_only(&self) -> anyhow::Result<()> {
        let retitled: Vec<&str> = self
            .localized
            .iter()
            .filter(|(_, text)| text.title.is_some() || text.summary.is_some())
            .map(|(locale, _)| locale.as_str())
            .collect();
        if retitled.is_empty() {
            Ok(())
        } else {
            bail!(
                "an all-clear changes only the message; leave out the title and summary of {}",
                retitled.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_localized_flag_names_a_locale_and_a_field() {
        assert_eq!(
            parse_localized("bn-BD.title=পেমেন্ট বন্ধ").unwrap(),
            (
                "bn-BD".to_owned(),
                TextField::Title,
                "পেমেন্ট বন্ধ".to_owned()
            )
        );
        assert!(
            parse_localized("bn.headline=x")
                .unwrap_err()
                .contains("headline")
        );
        assert!(parse_localized("title=x").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("texts.toml");
        std::fs::write(
            &file,
            "title = \"Payments are down\"\n[eo]\ntitle = \"Pagoj ne funkcias\"\nmessage = \"Ni laboras.\"\n",
        )
        .unwrap();
        let args = TextArgs {
            localized: vec![("eo".into(), TextField::Title, "Pagado haltis".into())],
            texts: Some(file),
        };
        let texts = args.load().unwrap();
        assert_eq!(texts.title.as_deref(), Some("Payments are down"));
        assert_eq!(
            texts.localized["eo"].title.as_deref(),
            Some("Pagado haltis")
        );
        assert_eq!(
            texts.localized["eo"].message.as_deref(),
            Some("Ni laboras.")
        );
    }

    #[test]
    fn a_misspelt_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("texts.toml");
        std::fs::write(&file, "titel = \"Payments are down\"\n").unwrap();
        let args = TextArgs {
            localized: vec![],
            texts: Some(file),
        };
        assert!(args.load().is_err());
    }
}
