//! `crisisd schedule`: follow-ups with their due times and states.

use std::path::Path;

use anyhow::anyhow;
use chrono_tz::Tz;
use clap::Args;

use super::Failure;
use super::client_args::{ClientArgs, with_query};
use crate::domain::follow_up::ScheduleList;
use crate::http::schedule::ScheduleQuery;

/// List follow-ups with their due times and states.
#[derive(Debug, Args)]
#[command(
    long_about = "List the follow-ups of one crisis, or of every crisis: when each is due, in \
                  the operator's time zone, and its state: pending (waiting for its time), sent \
                  (it became a follow_up announcement), cancelled (by the all-clear, or a change \
                  of kind and with it of plan) or skipped (found due later than [follow_ups] \
                  max_lateness, e.g. the daemon was down), with the reason.",
    after_help = "Examples:\n  \
        crisisd schedule                          every crisis's follow-ups\n  \
        crisisd schedule 0193... --tz Asia/Dhaka  one crisis, times in Dhaka\n  \
        crisisd schedule 0193... --json\n\n\
        Times are shown in --tz, else $TZ when it names an IANA zone, else the daemon's \
        [follow_ups] time_zone."
)]
pub struct ScheduleArgs {
    /// Only this crisis's follow-ups.
    pub id: Option<String>,
    /// IANA time zone to show due times in (e.g. Europe/London).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl ScheduleArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let zone = self.zone()?;
        let api = self.client.connect(config)?;
        let path = match &self.id {
            Some(id) => format!("/v1/crises/{id}/follow-ups"),
            None => "/v1/follow-ups".to_owned(),
        };
        let path = match zone {
            // Encoded: `Etc/GMT+5` would otherwise reach the daemon as
            // `Etc/GMT 5`.
            Some(zone) => {
                let query = ScheduleQuery {
                    tz: Some(zone.name().to_owned()),
                };
                with_query(&path, &query)?
            }
            None => path,
        };
        let list: ScheduleList = api.get(&path).await?;
        self.client.print(&list, |list| {
            let zone = zone
                .or_else(|| list.time_zone.parse().ok())
                .unwrap_or(Tz::UTC);
            print!("{}", list.table(zone, self.id.is_none()));
        });
        Ok(())
    }

    /// `--tz`, else `$TZ` when it names an IANA zone; `None` leaves the
    /// choice to the daemon.
    fn zone(&self) -> Result<Option<Tz>, Failure> {
        match self.tz.as_deref() {
            Some(name) => name.parse::<Tz>().map(Some).map_err(|_| {
                Failure::Usage(anyhow!(
                    "--tz `{name}` is not an IANA time zone (e.g. Europe/London)"
                ))
            }),
            None => Ok(std::env::var("TZ")
                .ok()
                .and_then(|tz| tz.trim_start_matches(':').parse().ok())),
        }
    }
}
