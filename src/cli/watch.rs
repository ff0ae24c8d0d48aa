//! `crisisd status --watch`: follows the crises shown until nothing is
//! left to send: progress bars on a terminal, one plain line per channel
//! when piped, JSON lines with `--json`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Failure;
use super::client::{ApiClient, ClientError};
use super::status::{format_eta, format_rate, nothing_shown, print_summary};
use crate::domain::CrisisId;
use crate::http::api::{CrisisDetail, CrisisList, CrisisSummary};

/// How often the progress bars are redrawn.
const BAR_INTERVAL: Duration = Duration::from_secs(1);
/// How often plain lines (and JSON lines) are printed: often enough to
/// follow, rare enough for a log.
const LINE_INTERVAL: Duration = Duration::from_secs(2);
/// A watch gives up once the daemon has been unreachable this long.
const WATCH_GIVE_UP: Duration = Duration::from_secs(30);

fn unfinished(summary: &CrisisSummary) -> bool {
    summary.deliveries.values().any(|c| c.remaining() > 0)
}

/// The crises `status --watch` follows.
async fn watched(
    api: &ApiClient,
    id: Option<&str>,
    all: bool,
) -> Result<Vec<CrisisSummary>, ClientError> {
    match id {
        Some(id) => {
            let detail: CrisisDetail = api.get(&format!("/v1/crises/{id}")).await?;
            Ok(vec![CrisisSummary {
                crisis: detail.crisis,
                deliveries: detail.deliveries,
                reach: detail.reach,
            }])
        }
        None => {
            // Every crisis, then filtered: a resolved one whose all-clear is
            // still going out is followed too, not dropped at the resolve.
            let list: CrisisList = api.get("/v1/crises?status=all").await?;
            Ok(list
                .crises
                .into_iter()
                .filter(|s| all || s.crisis.is_active() || unfinished(s))
                .collect())
        }
    }
}

/// Where `status --watch` draws.
enum WatchView {
    /// A terminal: progress bars redrawn in place.
    Bars(Box<Bars>),
    /// A pipe or file: one plain line per channel per tick.
    Lines,
    /// `--json`: one JSON object per tick.
    Json,
}

/// What a drawing of the crises shown leaves to do.
enum Drawn {
    /// Something is still pending, in flight or retrying.
    Unfinished,
    /// Nothing is left to send; the view is finished.
    Finished,
    /// The reader went away (`| head`): nothing left to do, nowhere to
    /// print.
    ReaderGone,
}

impl WatchView {
    /// Bars on a terminal, plain lines on a pipe, JSON when asked.
    fn for_stdout(json: bool) -> Result<Self, Failure> {
        Ok(if json {
            WatchView::Json
        } else if std::io::stdout().is_terminal() {
            WatchView::Bars(Box::new(Bars::new()?))
        } else {
            WatchView::Lines
        })
    }

    fn interval(&self) -> Duration {
        match self {
            WatchView::Bars(_) => BAR_INTERVAL,
            WatchView::Lines | WatchView::Json => LINE_INTERVAL,
        }
    }

    /// Shows the crises, and finishes the view once nothing is left.
    fn draw(&mut self, shown: &[CrisisSummary]) -> Result<Drawn, Failure> {
        match self.show(shown) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(Drawn::ReaderGone);
            }
            Err(err) => return Err(Failure::Runtime(anyhow!("cannot print: {err}"))),
        }
        if shown.iter().any(unfinished) {
            return Ok(Drawn::Unfinished);
        }
        self.finish();
        Ok(Drawn::Finished)
    }

    fn show(&mut self, shown: &[CrisisSummary]) -> std::io::Result<()> {
        match self {
            WatchView::Bars(bars) => {
                bars.show(shown);
                Ok(())
            }
            WatchView::Lines => print_lines(shown),
            WatchView::Json => {
                let line = serde_json::to_string(&serde_json::json!({
                    "at": Utc::now(),
                    "crises": shown,
                }))?;
                writeln!(std::io::stdout().lock(), "{line}")
            }
        }
    }

    fn warn(&self, message: &str) {
        match self {
            // Above the bars, so they are not torn.
            WatchView::Bars(bars) => {
                if bars.multi.println(message).is_err() {
                    eprintln!("{message}");
                }
            }
            WatchView::Lines | WatchView::Json => eprintln!("{message}"),
        }
    }

    /// Finished: the bars stay drawn as they last were.
    fn finish(&self) {
        if let WatchView::Bars(bars) = self {
            for bar in bars.headers.values().chain(bars.bars.values()) {
                bar.finish();
            }
        }
    }

    /// Interrupted or given up: the bars stay as last drawn, and are not
    /// redrawn (a redraw after the terminal echoed ^C would leave a torn
    /// copy above them).
    fn stop(&self) {
        if let WatchView::Bars(bars) = self {
            bars.multi.set_draw_target(ProgressDrawTarget::hidden());
            println!();
            println!("Stopped watching; the daemon goes on sending.");
        }
    }
}

/// `status --watch`: redraws until nothing is left pending, in flight or
/// retrying for the crises shown, or until Ctrl-C; both exit 0.
pub async fn watch_status(
    api: &ApiClient,
    id: Option<&str>,
    all: bool,
    json: bool,
) -> Result<(), Failure> {
    let mut view = WatchView::for_stdout(json)?;
    let interval = view.interval();
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut answered = false;
    loop {
        // Interruptible while waiting for the daemon too.
        let fetched = tokio::select! {
            _ = &mut interrupted => {
                view.stop();
                return Ok(());
            }
            fetched = watched(api, id, all) => fetched,
        };
        match fetched {
            Ok(shown) => {
                failing_since = None;
                match view.draw(&shown)? {
                    Drawn::Unfinished => answered = true,
                    Drawn::Finished if json => return Ok(()),
                    Drawn::Finished => {
                        print_final(&shown, id.is_some(), all);
                        return Ok(());
                    }
                    Drawn::ReaderGone => return Ok(()),
                }
            }
            // A wrong id, token or URL is reported at once, as without --watch.
            Err(err) if !answered => return Err(err.into()),
            Err(err) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= WATCH_GIVE_UP {
                    view.stop();
                    return Err(err.into());
                }
                view.warn(&format!("{err}; trying again"));
            }
        }
        tokio::select! {
            _ = &mut interrupted => {
                view.stop();
                return Ok(());
            }
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Resolves at Ctrl-C. Without a signal handler, Ctrl-C ends the process
/// as usual; the watch must not read a failed install as an interruption.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn print_final(shown: &[CrisisSummary], one: bool, all: bool) {
    if shown.is_empty() {
        println!("{}", nothing_shown(all));
        return;
    }
    if !one {
        println!("Nothing left to send for the crises shown.");
    }
    let color = std::io::stdout().is_terminal();
    for summary in shown {
        print_summary(summary, color);
    }
}

/// One line per crisis and channel, for logs: no escape codes, key=value.
fn print_lines(shown: &[CrisisSummary]) -> std::io::Result<()> {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut out = std::io::stdout().lock();
    for summary in shown {
        for (channel, c) in &summary.deliveries {
            let eta = match c.eta_seconds {
                Some(s) => format!("{s}s"),
                None => "-".to_owned(),
            };
            writeln!(
                out,
                "{now} {} {channel} sent={} pending={} in_flight={} retrying={} dead={} rate={:.1}/s eta={eta}",
                summary.crisis.id,
                c.sent,
                c.pending,
                c.in_flight,
                c.retrying,
                c.dead,
                c.rate_per_second
            )?;
        }
    }
    out.flush()
}

/// Progress bars: per crisis a header line, under it one bar per channel.
struct Bars {
    multi: MultiProgress,
    header_style: ProgressStyle,
    bar_style: ProgressStyle,
    headers: BTreeMap<CrisisId, ProgressBar>,
    bars: BTreeMap<(CrisisId, String), ProgressBar>,
}

impl Bars {
    fn new() -> Result<Self, Failure> {
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .map_err(|e| Failure::Runtime(anyhow!("progress bar template: {e}")))
        };
        Ok(Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            header_style: style("{msg}")?,
            bar_style: style("  {prefix:<12} [{bar:28.cyan/blue}] {pos:>7}/{len:<7} {msg}")?
                .progress_chars("=> "),
            headers: BTreeMap::new(),
            bars: BTreeMap::new(),
        })
    }

    fn show(&mut self, shown: &[CrisisSummary]) {
        self.remove_gone(shown);
        for summary in shown {
            self.draw(summary);
        }
    }

    /// Crises that left the list (another watcher's --all, a finished
    /// all-clear) take their bars with them.
    fn remove_gone(&mut self, shown: &[CrisisSummary]) {
        let multi = &self.multi;
        self.headers.retain(|id, bar| {
            let keep = shown.iter().any(|s| s.crisis.id == *id);
            if !keep {
                multi.remove(bar);
            }
            keep
        });
        self.bars.retain(|(id, channel), bar| {
            let keep = shown
                .iter()
                .any(|s| s.crisis.id == *id && s.deliveries.contains_key(channel));
            if !keep {
                multi.remove(bar);
            }
            keep
        });
    }

    /// One crisis: its header line, under it one bar per channel.
    fn draw(&mut self, summary: &CrisisSummary) {
        let crisis = &summary.crisis;
        let header = self.headers.entry(crisis.id).or_insert_with(|| {
            self.multi
                .add(ProgressBar::new(0).with_style(self.header_style.clone()))
        });
        header.set_message(format!(
            "{}  {} {}  {}  [{}]{}",
            crisis.id,
            crisis.severity,
            crisis.kind,
            crisis.title,
            crisis.status,
            if summary.deliveries.is_empty() {
                "  (no deliveries)"
            } else {
                ""
            }
        ));
        // Bars are kept in channel order under their crisis's header.
        let mut last = header.clone();
        for (channel, c) in &summary.deliveries {
            let bar = self
                .bars
                .entry((crisis.id, channel.clone()))
                .or_insert_with(|| {
                    let bar = self.multi.insert_after(
                        &last,
                        ProgressBar::new(c.total()).with_style(self.bar_style.clone()),
                    );
                    bar.set_prefix(channel.clone());
                    bar
                });
            bar.set_length(c.total());
            bar.set_position(c.sent + c.dead);
            bar.set_message(format!(
                "pending {} · in flight {} · retrying {} · dead {} · {} · ETA {}",
                c.pending,
                c.in_flight,
                c.retrying,
                c.dead,
                format_rate(c.rate_per_second),
                format_eta(c)
            ));
            last = bar.clone();
        }
    }
}
