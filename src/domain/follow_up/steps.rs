//! Follow-up plans from the config, checked once, and the due times of
//! their steps: offsets after the declaration (or the all-clear) and cron
//! schedules read in a named time zone.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::quiet_hours::instant;
use super::{FollowUpSpec, Library, NewFollowUp, Phase, QuietHours, Topic};
use crate::domain::follow_up::{FollowUpSettings, PlanSettings, StepSettings};
use crate::domain::{CrisisId, Kind};

/// A cron step may produce at most this many messages: a schedule such as
/// `* * * * *` left running for two weeks is a mistake, not a plan.
pub const MAX_OCCURRENCES: usize = 500;

#[derive(Debug, Clone)]
enum When {
    After(TimeDelta),
    Cron(Box<cron::Schedule>),
    /// Reader-local (`at`): from this offset on, once a day `count` times;
    /// each reader's message then waits for `at` in the reader's zone.
    Daily(TimeDelta),
}

#[derive(Debug, Clone)]
struct Step {
    when: When,
    /// How long after the start a cron step keeps going.
    until: TimeDelta,
    count: usize,
    spec: FollowUpSpec,
}

#[derive(Debug, Clone)]
struct Plan {
    kinds: Vec<Kind>,
    steps: Vec<Step>,
    after_resolution: Vec<Step>,
}

/// Everything the follow-ups need at run time, checked.
#[derive(Debug, Clone)]
pub struct FollowUps {
    /// Cron steps are read here; due times are shown here by default.
    pub zone: Tz,
    pub max_lateness: Duration,
    pub poll_interval: Duration,
    pub library: Library,
    pub quiet_hours: Option<QuietHours>,
    plans: Vec<Plan>,
}

/// The `cron` crate wants seconds first and counts the days of the week
/// from 1 (Sunday); the config uses the common five fields with 0 or 7 for
/// Sunday. Numbers become day names, so there is nothing to renumber.
pub fn normalize_cron(expression: &str) -> Result<String, String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = fields.as_slice() else {
        return Err(format!(
            "`{expression}` must have five fields: minute hour day-of-month month day-of-week"
        ));
    };
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let name = |part: &str| -> Result<String, String> {
        match part.parse::<usize>() {
            Ok(n) if n < NAMES.len() => Ok(NAMES[n].to_owned()),
            Ok(n) => Err(format!("day of week {n} is out of range 0-7")),
            Err(_) => Ok(part.to_owned()),
        }
    };
    let mut items = Vec::new();
    for item in weekday.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let range = match range.split_once('-') {
            // `5-7` would read as FRI-SUN, which the cron crate cannot wrap.
            Some((from, "7")) if step.is_none() => format!("{}-SAT,SUN", name(from)?),
            Some((_, "7")) => {
                return Err(format!(
                    "day of week `{item}`: write a stepped range ending on Sunday as 0-6"
                ));
            }
            Some((from, to)) => format!("{}-{}", name(from)?, name(to)?),
            None => name(range)?,
        };
        items.push(match step {
            Some(step) => format!("{range}/{step}"),
            None => range,
        });
    }
    Ok(format!(
        "0 {minute} {hour} {day} {month} {}",
        items.join(",")
    ))
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

impl When {
    /// When a step is due, from its `after`, `cron` and `at`.
    fn build(settings: &StepSettings, at: &str, problems: &mut Vec<String>) -> Option<Self> {
        Some(match (&settings.after, &settings.cron) {
            (after, None) if settings.at.is_some() => {
                if settings.until.is_some() {
                    problems.push(format!(
                        "{at}: an `at` step repeats daily `count` times; `until` is for cron"
                    ));
                }
                When::Daily(after.map_or(TimeDelta::zero(), delta))
            }
            (_, Some(_)) if settings.at.is_some() => {
                problems.push(format!(
                    "{at}: `at` is a reader-local time for an `after` step (or alone); \
                     a cron step already names its times"
                ));
                return None;
            }
            (Some(after), None) => {
                if settings.until.is_some() || settings.count.is_some() {
                    problems.push(format!(
                        "{at}: `until` and `count` end a cron step; an `after` step is sent once"
                    ));
                }
                When::After(delta(*after))
            }
            (None, Some(expression)) => {
                let parsed = normalize_cron(expression).and_then(|six| {
                    cron::Schedule::from_str(&six)
                        .map_err(|e| format!("`{expression}` is not a cron schedule: {e}"))
                });
                match parsed {
                    Ok(schedule) => When::Cron(Box::new(schedule)),
                    Err(problem) => {
                        problems.push(format!("{at}: {problem}"));
                        return None;
                    }
                }
            }
            _ => {
                problems.push(format!(
                    "{at}: give one of `after` or `cron` (`at` alone or with `after`)"
                ));
                return None;
            }
        })
    }
}

impl Step {
    fn build(
        plan: &PlanSettings,
        phase: Phase,
        settings: &StepSettings,
        horizon: Duration,
        channels: &[String],
        problems: &mut Vec<String>,
    ) -> Option<Self> {
        let at = format!(
            "follow_ups.plans `{}` {} `{}`",
            plan.name,
            match phase {
                Phase::Active => "step",
                Phase::AfterResolution => "after_resolution step",
            },
            settings.name
        );
        for channel in &settings.channels {
            if !channels.contains(channel) {
                problems.push(format!("{at}: no channel is named `{channel}`"));
            }
        }
        if !settings.categories.is_empty() && settings.template != Topic::Resources {
            problems.push(format!(
                "{at}: `categories` only applies to template = \"resources\""
            ));
        }
        let when = When::build(settings, &at, problems)?;
        if settings.count == Some(0) {
            problems.push(format!("{at}: `count` must be at least 1"));
        }
        let step = Self {
            when,
            until: delta(settings.until.unwrap_or(horizon)),
            count: settings
                .count
                .map_or(
                    if settings.at.is_some() {
                        1
                    } else {
                        MAX_OCCURRENCES + 1
                    },
                    |c| c as usize,
                )
                .max(1),
            spec: FollowUpSpec {
                plan: plan.name.clone(),
                step: settings.name.clone(),
                phase,
                topic: settings.template,
                categories: settings.categories.clone(),
                channels: settings.channels.clone(),
                locales: settings.locales.clone(),
                regions: settings.regions.clone(),
                local_at: settings.at,
            },
        };
        if step.count > MAX_OCCURRENCES {
            // Counted from an arbitrary start: how many the end allows.
            let many = step.due_times(DateTime::UNIX_EPOCH, Tz::UTC).len();
            if many > MAX_OCCURRENCES {
                problems.push(format!(
                    "{at}: the schedule would send more than {MAX_OCCURRENCES} messages; \
                     set a `count` or an earlier `until`"
                ));
            }
        }
        Some(step)
    }

    /// Every due time of the step, counted from `start`.
    fn due_times(&self, start: DateTime<Utc>, zone: Tz) -> Vec<DateTime<Utc>> {
        match &self.when {
            When::After(after) => vec![start + *after],
            When::Daily(after) => (0..self.count.min(MAX_OCCURRENCES))
                .map(|day| start + *after + TimeDelta::days(i64::try_from(day).unwrap_or(0)))
                .collect(),
            When::Cron(schedule) => {
                // Read on the zone's wall clock (local times laid out as if
                // UTC), then placed in time: the cron crate's own zone
                // handling skips a time the clocks jump over and fires twice
                // in the hour they repeat.
                let end = start + self.until;
                let local_start = Utc.from_utc_datetime(&start.with_timezone(&zone).naive_local());
                let mut last = start;
                let mut due = Vec::new();
                for local in schedule.after(&local_start) {
                    let Some(at) = instant(zone, local.naive_utc()) else {
                        continue;
                    };
                    if at > end {
                        break;
                    }
                    if at > last {
                        due.push(at);
                        last = at;
                    }
                    if due.len() == self.count {
                        break;
                    }
                }
                due
            }
        }
    }
}

impl FollowUps {
    /// Checks the plans and the resource library, reporting every problem.
    pub fn build(
        settings: &FollowUpSettings,
        library: Library,
        channels: &[String],
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut plans = Vec::new();
        let mut names = HashSet::new();
        let mut claimed: HashSet<Kind> = HashSet::new();
        let mut defaults = 0;
        for plan in &settings.plans {
            if !names.insert(plan.name.as_str()) {
                problems.push(format!(
                    "follow_ups.plans: the name `{}` is used twice",
                    plan.name
                ));
            }
            if plan.kinds.is_empty() {
                defaults += 1;
            }
            for kind in &plan.kinds {
                if !claimed.insert(*kind) {
                    problems.push(format!(
                        "follow_ups.plans `{}`: kind `{kind}` already has a plan",
                        plan.name
                    ));
                }
            }
            let mut step_names = HashSet::new();
            let mut build = |phase, list: &[StepSettings]| -> Vec<Step> {
                list.iter()
                    .filter_map(|s| {
                        if !step_names.insert(s.name.clone()) {
                            problems.push(format!(
                                "follow_ups.plans `{}`: the step name `{}` is used twice",
                                plan.name, s.name
                            ));
                        }
                        Step::build(plan, phase, s, settings.horizon, channels, &mut problems)
                    })
                    .collect()
            };
            let steps = build(Phase::Active, &plan.steps);
            let after_resolution = build(Phase::AfterResolution, &plan.after_resolution);
            plans.push(Plan {
                kinds: plan.kinds.clone(),
                steps,
                after_resolution,
            });
        }
        if defaults > 1 {
            problems.push(
                "follow_ups.plans: more than one plan without `kinds`; only one can be the default"
                    .into(),
            );
        }
        if settings.poll_interval.is_zero() {
            problems.push("follow_ups.poll_interval must be more than 0".into());
        }
        let quiet = &settings.quiet_hours;
        if quiet.enabled && quiet.start == quiet.end {
            problems.push(
                "follow_ups.quiet_hours: start and end are the same; set enabled = false instead"
                    .into(),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            zone: settings.time_zone,
            max_lateness: settings.max_lateness,
            poll_interval: settings.poll_interval,
            library,
            quiet_hours: quiet
                .enabled
                .then(|| QuietHours::new(quiet.start, quiet.end)),
            plans,
        })
    }

    /// No plan has a step: nothing is ever scheduled.
    pub fn is_empty(&self) -> bool {
        self.plans
            .iter()
            .all(|p| p.steps.is_empty() && p.after_resolution.is_empty())
    }

    fn plan_for(&self, kind: Kind) -> Option<&Plan> {
        self.plans
            .iter()
            .find(|p| p.kinds.contains(&kind))
            .or_else(|| self.plans.iter().find(|p| p.kinds.is_empty()))
    }

    /// The follow-ups of `kind`'s plan for `phase`, counted from `start`
    /// (the declaration, or the all-clear), keeping those due after `after`.
    pub fn schedule(
        &self,
        crisis_id: CrisisId,
        kind: Kind,
        phase: Phase,
        start: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Vec<NewFollowUp> {
        let Some(plan) = self.plan_for(kind) else {
            return Vec::new();
        };
        let steps = match phase {
            Phase::Active => &plan.steps,
            Phase::AfterResolution => &plan.after_resolution,
        };
        let mut due = Vec::new();
        for step in steps {
            for (index, at) in step.due_times(start, self.zone).into_iter().enumerate() {
                if at < after {
                    continue;
                }
                due.push(NewFollowUp {
                    id: Uuid::now_v7(),
                    crisis_id,
                    occurrence: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    due_at: at,
                    spec: step.spec.clone(),
                });
            }
        }
        due.sort_by_key(|f| f.due_at);
        due
    }

    /// Every step of `kind`'s plan, while the crisis lasts and after the
    /// all-clear, in the plan's order: what a preview of its follow-ups shows.
    pub fn steps_for(&self, kind: Kind) -> Vec<&FollowUpSpec> {
        self.plan_for(kind)
            .map(|plan| {
                plan.steps
                    .iter()
                    .chain(&plan.after_resolution)
                    .map(|step| &step.spec)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The topics some step uses, in `Topic::ALL` order: their templates
    /// are checked at start.
    pub fn topics(&self) -> Vec<Topic> {
        let used: HashSet<Topic> = self
            .plans
            .iter()
            .flat_map(|p| p.steps.iter().chain(&p.after_resolution))
            .map(|s| s.spec.topic)
            .collect();
        Topic::ALL
            .iter()
            .copied()
            .filter(|t| used.contains(t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_cron_fields_gain_seconds_and_named_weekdays() {
        assert_eq!(normalize_cron("0 9 * * *").unwrap(), "0 0 9 * * *");
        assert_eq!(
            normalize_cron("30 18 * * 1-5").unwrap(),
            "0 30 18 * * MON-FRI"
        );
        assert_eq!(normalize_cron("0 9 * * 0,7").unwrap(), "0 0 9 * * SUN,SUN");
        assert_eq!(
            normalize_cron("0 9 * * 5-7").unwrap(),
            "0 0 9 * * FRI-SAT,SUN"
        );
        assert_eq!(normalize_cron("0 9 * * */2").unwrap(), "0 0 9 * * */2");
        assert!(normalize_cron("0 0 9 * * *").is_err());
        assert!(normalize_cron("0 9 * * 8").is_err());
        for expression in ["0 9 * * 1-5", "0 9 * * 5-7", "*/15 * * * *", "0 9 * * MON"] {
            let six = normalize_cron(expression).unwrap();
            assert!(
                cron::Schedule::from_str(&six).is_ok(),
                "{expression} -> {six}"
            );
        }
    }

    #[test]
    fn the_normalized_sunday_is_a_sunday() {
        use chrono::{Datelike, TimeZone, Weekday};
        let schedule = cron::Schedule::from_str(&normalize_cron("0 9 * * 0").unwrap()).unwrap();
        let next = schedule
            .after(&Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap())
            .next()
            .unwrap();
        assert_eq!(next.weekday(), Weekday::Sun);
    }
}

#[cfg(test)]
mod dst {
    use super::*;

    fn step(expression: &str) -> Step {
        Step {
            when: When::Cron(Box::new(
                cron::Schedule::from_str(&normalize_cron(expression).unwrap()).unwrap(),
            )),
            until: TimeDelta::days(3),
            count: 10,
            spec: FollowUpSpec {
                plan: "p".into(),
                step: "s".into(),
                phase: Phase::Active,
                topic: Topic::CheckIn,
                categories: Vec::new(),
                channels: Vec::new(),
                locales: Vec::new(),
                regions: Vec::new(),
                local_at: None,
            },
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_cron_time_the_clocks_skip_or_repeat_is_sent_once_a_day() {
        let london: Tz = "Europe/London".parse().unwrap();
        let step = step("30 1 * * *");
        // 01:30 does not exist on 29 March 2026 in London: 02:30 BST instead.
        assert_eq!(
            step.due_times(utc(2026, 3, 27, 12, 0), london),
            [
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 30),
                utc(2026, 3, 30, 0, 30)
            ]
        );
        // 01:30 happens twice on 25 October 2026: the first one only.
        assert_eq!(
            step.due_times(utc(2026, 10, 24, 12, 0), london),
            [
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 26, 1, 30),
                utc(2026, 10, 27, 1, 30)
            ]
        );
    }

    #[test]
    fn a_reader_local_step_is_due_daily_from_its_offset_and_refuses_cron() {
        let mut daily = step("0 9 * * *");
        daily.when = When::Daily(TimeDelta::hours(1));
        daily.count = 3;
        assert_eq!(
            daily.due_times(utc(2026, 11, 23, 0, 0), Tz::UTC),
            [
                utc(2026, 11, 23, 1, 0),
                utc(2026, 11, 24, 1, 0),
                utc(2026, 11, 25, 1, 0)
            ]
        );
        let settings: FollowUpSettings = toml::from_str(
            r#"
[[plans]]
name = "p"
[[plans.steps]]
name = "recap"
at = "09:00"
cron = "0 9 * * *"
template = "status_recap"
"#,
        )
        .unwrap();
        let problems = FollowUps::build(&settings, Library::default(), &[]).unwrap_err();
        assert!(
            problems[0].contains("`at` is a reader-local time"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_cron_step_stops_at_its_count() {
        let mut step = step("0 9 * * *");
        step.count = 2;
        assert_eq!(
            step.due_times(utc(2026, 11, 23, 12, 0), Tz::UTC),
            [utc(2026, 11, 24, 9, 0), utc(2026, 11, 25, 9, 0)]
        );
    }
}
