//! The resource library: links by crisis kind, category, locale and
//! region, checked at start, and what the follow-up templates see.

use std::collections::HashSet;

use serde::Serialize;

use super::{Category, FollowUpSpec, Topic};
use crate::domain::Kind;
use crate::domain::follow_up::{FollowUpSettings, ResourceSettings, ResourcesFile};

#[derive(Debug, Clone, Default)]
pub struct Library {
    resources: Vec<ResourceSettings>,
    default_locale: String,
}

/// One resource as a reader sees it, in their language where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceView {
    pub id: String,
    pub category: Category,
    pub title: String,
    pub description: String,
    pub url: String,
    /// The locale the text is in: the reader's, or the fallback's.
    pub locale: String,
}

/// Resources of one category, for templates that list them by category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryView {
    pub category: Category,
    pub resources: Vec<ResourceView>,
}

/// What a follow-up template sees as `follow_up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUpView {
    pub topic: Topic,
    pub step: String,
    /// The resources for this crisis kind, language and region, in the
    /// step's categories, in config order.
    pub resources: Vec<ResourceView>,
    /// The same, grouped by category (only categories with resources).
    pub categories: Vec<CategoryView>,
}

fn valid_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` must be an http(s) URL with a host"));
    }
    Ok(())
}

impl Library {
    /// `[[follow_ups.resources]]` and those of the file `resources_file`
    /// names, checked.
    pub fn load(
        settings: &FollowUpSettings,
        default_locale: &str,
        locales: &[String],
    ) -> Result<Self, Vec<String>> {
        let mut resources = settings.resources.clone();
        if let Some(path) = &settings.resources_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                vec![format!(
                    "follow_ups.resources_file: cannot read {}: {e}",
                    path.display()
                )]
            })?;
            let file: ResourcesFile = toml::from_str(&text)
                .map_err(|e| vec![format!("follow_ups.resources_file {}: {e}", path.display())])?;
            resources.extend(file.resources);
        }
        Self::build(resources, default_locale, locales)
    }

    /// Checks every resource: a unique id, an http(s) URL, and text in the
    /// default locale, which is every other locale's fallback.
    pub fn build(
        resources: Vec<ResourceSettings>,
        default_locale: &str,
        locales: &[String],
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut ids = HashSet::new();
        for resource in &resources {
            let at = format!("follow_ups.resources `{}`", resource.id);
            if resource.id.trim().is_empty() {
                problems.push("follow_ups.resources: a resource has an empty id".to_owned());
            } else if !ids.insert(resource.id.as_str()) {
                problems.push(format!("{at}: the id is used twice"));
            }
            if let Err(problem) = valid_url(&resource.url) {
                problems.push(format!("{at}: {problem}"));
            }
            if !resource.text.contains_key(default_locale) {
                problems.push(format!(
                    "{at}: no text in the default locale `{default_locale}`, the fallback for \
                     readers in {}",
                    if resource.text.is_empty() {
                        "every locale".to_owned()
                    } else {
                        let missing: Vec<&str> = locales
                            .iter()
                            .map(String::as_str)
                            .filter(|l| !resource.text.contains_key(*l))
                            .collect();
                        if missing.is_empty() {
                            "other locales".to_owned()
                        } else {
                            missing.join(", ")
                        }
                    }
                ));
            }
            for (locale, text) in &resource.text {
                if text.title.trim().is_empty() || text.description.trim().is_empty() {
                    problems.push(format!(
                        "{at}: the `{locale}` title or description is empty"
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            resources,
            default_locale: default_locale.to_owned(),
        })
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The resources for a crisis `kind` and a reader in `locale` and
    /// `region` (`None`: broadcasts and readers without one see only
    /// resources that serve everywhere), limited to `categories` (empty:
    /// all).
    pub fn view(
        &self,
        kind: Kind,
        locale: &str,
        region: Option<&str>,
        categories: &[Category],
    ) -> Vec<ResourceView> {
        let language = locale.split('-').next().unwrap_or(locale);
        self.resources
            .iter()
            .filter(|r| r.kinds.is_empty() || r.kinds.contains(&kind))
            .filter(|r| categories.is_empty() || categories.contains(&r.category))
            .filter(|r| {
                r.regions.is_empty()
                    || region
                        .is_some_and(|reg| r.regions.iter().any(|x| x.eq_ignore_ascii_case(reg)))
            })
            .filter_map(|r| {
                let (locale, text) = [locale, language, self.default_locale.as_str()]
                    .into_iter()
                    .find_map(|l| r.text.get_key_value(l))
                    .or_else(|| r.text.iter().next())?;
                Some(ResourceView {
                    id: r.id.clone(),
                    category: r.category,
                    title: text.title.clone(),
                    description: text.description.clone(),
                    url: r.url.clone(),
                    locale: locale.clone(),
                })
            })
            .collect()
    }

    /// The template's `follow_up` for one reader.
    pub fn follow_up_view(
        &self,
        spec: &FollowUpSpec,
        kind: Kind,
        locale: &str,
        region: Option<&str>,
    ) -> FollowUpView {
        // A self-care follow-up lists self-care resources whatever the
        // step's categories say; other topics list what the step asks.
        let categories = match spec.topic {
            Topic::SelfCare => vec![Category::SelfCare],
            _ => spec.categories.clone(),
        };
        let resources = self.view(kind, locale, region, &categories);
        let categories = Category::ALL
            .iter()
            .map(|category| CategoryView {
                category: *category,
                resources: resources
                    .iter()
                    .filter(|r| r.category == *category)
                    .cloned()
                    .collect(),
            })
            .filter(|c| !c.resources.is_empty())
            .collect();
        FollowUpView {
            topic: spec.topic,
            step: spec.step.clone(),
            resources,
            categories,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_the_config_and_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resources.toml");
        std::fs::write(
            &path,
            r#"
[[resources]]
id = "shelters"
url = "https://example.org/shelters"
category = "community_groups"
kinds = ["natural_disaster"]
regions = ["north"]
text.en = { title = "Shelters", description = "Where to stay dry." }
text.bn = { title = "আশ্রয়কেন্দ্র", description = "শুকনো থাকার জায়গা।" }
"#,
        )
        .unwrap();
        let settings = FollowUpSettings {
            resources_file: Some(path.clone()),
            ..Default::default()
        };
        let locales = ["bn".to_owned(), "en".to_owned()];
        let library = Library::load(&settings, "en", &locales).unwrap();
        assert_eq!(library.len(), 1);
        let north = library.view(Kind::NaturalDisaster, "bn-BD", Some("North"), &[]);
        assert_eq!(north[0].title, "আশ্রয়কেন্দ্র");
        assert_eq!(north[0].locale, "bn");
        assert!(
            library
                .view(Kind::NaturalDisaster, "bn", Some("south"), &[])
                .is_empty()
        );
        assert!(
            library
                .view(Kind::NaturalDisaster, "bn", None, &[])
                .is_empty()
        );
        assert!(
            library
                .view(Kind::Outage, "bn", Some("north"), &[])
                .is_empty()
        );
        assert_eq!(
            library.view(Kind::NaturalDisaster, "eo", Some("north"), &[])[0].title,
            "Shelters",
            "the default locale's text stands in"
        );

        std::fs::write(&path, "[[resources]]\nid = \"x\"\n").unwrap();
        let problems = Library::load(&settings, "en", &locales).unwrap_err();
        assert!(
            problems[0].starts_with("follow_ups.resources_file"),
            "{problems:?}"
        );
    }
}
