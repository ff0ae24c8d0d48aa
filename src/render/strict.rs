//! Strict templates for real: minijinja's strict undefined catches a
//! misspelt variable only where it is printed or iterated, not where a
//! filter (`tojson`, `urlencode`, `default`, ...) or a test takes it, nor
//! on a branch the sample data does not reach. So every template's
//! undeclared variables (minijinja's static analysis) are checked against
//! the variables its context really has, down to attributes.

use std::collections::BTreeSet;

use minijinja::Environment;
use serde_json::Value;

/// Names minijinja itself provides in every template.
const BUILT_INS: [&str; 8] = [
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "self",
    "caller",
    "varargs",
];

/// Each variable that `template` uses and `context` does not have, as
/// written (`crisis.titel`, `txt`). `context` is a sample of what the
/// template is rendered with, every optional part filled in: an attribute
/// under a value that is not a map (a string, a list, none) is not checked
/// further.
pub fn undeclared(env: &Environment<'_>, template: &str, context: &Value) -> Vec<String> {
    let Ok(template) = env.get_template(template) else {
        // Not compiled: the render check reports the syntax error.
        return Vec::new();
    };
    let used: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
    used.into_iter()
        .filter(|path| !declared(context, path))
        .collect()
}

fn declared(context: &Value, path: &str) -> bool {
    let mut parts = path.split('.');
    let Some(head) = parts.next() else {
        return true;
    };
    if BUILT_INS.contains(&head) {
        return true;
    }
    let mut at = match context.get(head) {
        Some(value) => value,
        None => return false,
    };
    for part in parts {
        match at {
            Value::Object(map) => match map.get(part) {
                Some(value) => at = value,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

/// The union of several samples: every key any of them has, so that a
/// template used for several subjects (a follow-up's `follow_up`, a
/// reader's `recipient`) is checked against all it may see.
pub fn union(samples: impl IntoIterator<Item = Value>) -> Value {
    let mut all = Value::Object(Default::default());
    for sample in samples {
        merge(&mut all, sample);
    }
    all
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into @ Value::Null, from) => *into = from,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(source: &str) -> Environment<'static> {
        let mut env = Environment::new();
        env.add_template_owned("t", source.to_owned()).unwrap();
        env
    }

    #[test]
    fn a_misspelt_variable_is_found_whatever_filter_follows_it() {
        let context = serde_json::json!({"text": "hi", "crisis": {"title": "Down"}});
        for source in [
            "{{ txt|tojson }}",
            "{{ txt|urlencode }}",
            "{{ txt|default('x') }}",
            "{% if txt is defined %}{{ text }}{% endif %}",
        ] {
            assert_eq!(undeclared(&env(source), "t", &context), ["txt"], "{source}");
        }
        assert_eq!(
            undeclared(&env("{{ crisis.titel|upper }}"), "t", &context),
            ["crisis.titel"]
        );
        assert!(
            undeclared(
                &env("{% for c in crisis.title %}{{ c.x }}{% endfor %}{{ text|tojson }}"),
                "t",
                &context
            )
            .is_empty()
        );
    }

    #[test]
    fn macro_arguments_and_set_variables_are_declared() {
        let source = "{% macro m(cs) %}{{ cs.label }}{% endmacro %}{% set x = text %}{{ m(x) }}";
        let context = serde_json::json!({"text": "hi"});
        assert!(undeclared(&env(source), "t", &context).is_empty());
    }

    #[test]
    fn samples_are_merged_filling_what_one_of_them_left_empty() {
        let all = union([
            serde_json::json!({"recipient": null, "a": {"b": 1}}),
            serde_json::json!({"recipient": {"name": "Ada"}, "a": {"c": 2}}),
        ]);
        assert!(declared(&all, "recipient.name"));
        assert!(declared(&all, "a.c") && declared(&all, "a.b"));
        assert!(!declared(&all, "a.d"));
    }
}
