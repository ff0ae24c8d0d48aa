//! `group_by`: the alerts of one group are one source incident, so one
//! outage seen from two instances is one crisis and one message per
//! reader. The group fires while any of its alerts fires, at the highest
//! severity among them, and resolves when all have resolved.

use std::collections::BTreeMap;

use super::rules::Rules;
use super::signal::{Parsed, Signal, SignalState};
use crate::config::GROUP_KEY;

/// The signals of `parsed` folded into one per group; unchanged when the
/// hook does not group.
pub fn group(mut parsed: Parsed, by: &[String], rules: &Rules) -> Parsed {
    if by.is_empty() || parsed.signals.is_empty() {
        return parsed;
    }
    let mut groups: BTreeMap<String, Vec<Signal>> = BTreeMap::new();
    for signal in std::mem::take(&mut parsed.signals) {
        let key = group_key(&signal, by, parsed.group_key.as_deref());
        groups.entry(key).or_default().push(signal);
    }
    parsed.signals = groups
        .into_iter()
        .map(|(key, members)| merge(key, members, parsed.group_title.as_deref(), rules))
        .collect();
    parsed
}

fn group_key(signal: &Signal, by: &[String], notification_key: Option<&str>) -> String {
    if let [only] = by
        && only == GROUP_KEY
    {
        // A notification always carries one; without it each alert is
        // its own group, as without `group_by`.
        return match notification_key {
            Some(key) => format!("group:{key}"),
            None => signal.key.clone(),
        };
    }
    let values: Vec<String> = by
        .iter()
        .map(|label| {
            let value = signal.labels.get(label).map(String::as_str).unwrap_or("");
            format!("{label}={value:?}")
        })
        .collect();
    format!("group:{{{}}}", values.join(","))
}

fn merge(key: String, mut members: Vec<Signal>, title: Option<&str>, rules: &Rules) -> Signal {
    // The same order whatever order the source listed them in, so the
    // group's text does not change from one notification to the next.
    members.sort_by(|a, b| a.key.cmp(&b.key));
    let firing: Vec<&Signal> = members
        .iter()
        .filter(|s| s.state != SignalState::Resolved)
        .collect();
    let state = if firing.is_empty() {
        SignalState::Resolved
    } else {
        SignalState::Firing
    };
    let lead = firing.first().copied().unwrap_or(&members[0]);
    let mut signal = Signal::new(key, state, title.unwrap_or(&lead.title));
    signal.summary = match firing.as_slice() {
        [one] => one.summary.clone(),
        [] => lead.summary.clone(),
        many => {
            let titles: Vec<&str> = many.iter().map(|s| s.title.as_str()).collect();
            format!("{} alerts firing: {}", many.len(), titles.join("; "))
        }
    };
    signal.severity = firing
        .iter()
        .filter_map(|s| rules.stated_severity(s))
        .max_by_key(|s| s.rank());
    signal.severity_word = lead.severity_word.clone();
    signal.kind = lead.kind;
    signal.labels = lead
        .labels
        .iter()
        .filter(|(k, v)| members.iter().all(|m| m.labels.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut components: Vec<String> = members
        .iter()
        .flat_map(|m| m.components.iter().cloned())
        .collect();
    components.sort_unstable();
    components.dedup();
    signal.components = components;
    signal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, state: SignalState, severity: &str, instance: &str) -> Signal {
        let mut s = Signal::new(key, state, format!("Down on {instance}"));
        s.severity_word = Some(severity.into());
        s.labels = [
            ("alertname", "Down"),
            ("instance", instance),
            ("severity", severity),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        s
    }

    fn rules() -> Rules {
        let settings: crate::config::HookSettings =
            toml::from_str("name = \"a\"\nsource = \"alertmanager\"\n").unwrap();
        Rules::new(&settings).unwrap()
    }

    #[test]
    fn a_group_fires_at_its_worst_severity_while_any_alert_fires() {
        let parsed = Parsed {
            signals: vec![
                alert("b", SignalState::Firing, "warning", "db2"),
                alert("a", SignalState::Firing, "critical", "db1"),
                alert("c", SignalState::Resolved, "critical", "db3"),
            ],
            group_key: Some("{}:{alertname=\"Down\"}".into()),
            ..Parsed::default()
        };
        let grouped = group(parsed.clone(), &[GROUP_KEY.to_owned()], &rules());
        assert_eq!(grouped.signals.len(), 1);
        let one = &grouped.signals[0];
        assert_eq!(one.key, "group:{}:{alertname=\"Down\"}");
        assert_eq!(one.state, SignalState::Firing);
        assert_eq!(one.severity, Some(crate::domain::Severity::Critical));
        assert_eq!(one.title, "Down on db1");
        assert_eq!(one.summary, "2 alerts firing: Down on db1; Down on db2");
        assert_eq!(
            one.labels.get("alertname").map(String::as_str),
            Some("Down")
        );
        assert!(!one.labels.contains_key("instance"));

        let by_instance = group(parsed, &["instance".to_owned()], &rules());
        assert_eq!(by_instance.signals.len(), 3);
        assert_eq!(by_instance.signals[2].key, "group:{instance=\"db3\"}");
        assert_eq!(by_instance.signals[2].state, SignalState::Resolved);
    }
}
