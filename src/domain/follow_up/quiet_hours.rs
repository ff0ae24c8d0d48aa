//! Quiet hours: a non-critical SMS follow-up due at night in the reader's
//! own time zone waits until the window ends.

use chrono::{DateTime, Days, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

impl QuietHours {
    /// From `start` to `end` local time; past midnight when `end` is
    /// earlier than `start` (21:00 to 08:00).
    pub fn new(start: NaiveTime, end: NaiveTime) -> Self {
        Self { start, end }
    }

    fn contains(&self, time: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// When a message due `at` may go to a reader in `zone`: `at` itself
    /// outside quiet hours, else the moment the window ends there.
    pub fn release(&self, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&zone);
        let time = local.time();
        if !self.contains(time) {
            return at;
        }
        let mut day = local.date_naive();
        if self.start > self.end && time >= self.start {
            day = day.checked_add_days(Days::new(1)).unwrap_or(day);
        }
        // A window ending inside a DST gap ends when the clocks have moved.
        let released = instant(zone, day.and_time(self.end)).unwrap_or(at);
        released.max(at)
    }
}

/// When a wall-clock time happens in `zone`: the first time when the
/// clocks repeat it, an hour later on the wall clock (01:30 becomes 02:30)
/// when they jump over it.
pub fn instant(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|at| at.with_timezone(&Utc))
}

/// The first moment at or after `at` when the wall clock in `zone` reads
/// `time` (a time the clocks jump over: an hour later on the wall clock):
/// when a reader-local step's message reaches a reader there.
pub fn next_local(at: DateTime<Utc>, time: NaiveTime, zone: Tz) -> DateTime<Utc> {
    let mut day = at.with_timezone(&zone).date_naive();
    for _ in 0..3 {
        if let Some(due) = instant(zone, day.and_time(time)).filter(|due| *due >= at) {
            return due;
        }
        day = day.checked_add_days(Days::new(1)).unwrap_or(day);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_message_due_at_night_in_dhaka_waits_for_eight_o_clock() {
        let quiet = QuietHours::new(hm(21, 0), hm(8, 0));
        let zone: Tz = "Asia/Dhaka".parse().unwrap();
        // 16:30 UTC is 22:30 in Dhaka (UTC+6).
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 16, 30, 0).unwrap();
        assert_eq!(
            quiet.release(at, zone),
            Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
        );
        // 23:00 UTC is 05:00 the next morning there: same day's 08:00.
        let early = Utc.with_ymd_and_hms(2026, 11, 23, 23, 0, 0).unwrap();
        assert_eq!(
            quiet.release(early, zone),
            Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
        );
        // 06:00 UTC is noon there: not held.
        let noon = Utc.with_ymd_and_hms(2026, 11, 23, 6, 0, 0).unwrap();
        assert_eq!(quiet.release(noon, zone), noon);
    }

    #[test]
    fn nine_in_the_morning_comes_in_each_readers_own_zone() {
        let nine = hm(9, 0);
        // 05:00 UTC: 11:00 in Dhaka (tomorrow's 09:00 is next), 00:00 in
        // New York (09:00 today).
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 5, 0, 0).unwrap();
        let dhaka: Tz = "Asia/Dhaka".parse().unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            next_local(at, nine, dhaka),
            Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap()
        );
        assert_eq!(
            next_local(at, nine, new_york),
            Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap()
        );
        let exactly = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        assert_eq!(next_local(exactly, nine, dhaka), exactly);
    }

    #[test]
    fn a_window_within_one_day_holds_only_inside_it() {
        let quiet = QuietHours::new(hm(12, 0), hm(14, 0));
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap();
        assert_eq!(
            quiet.release(at, Tz::UTC),
            Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap()
        );
        let later = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
        assert_eq!(quiet.release(later, Tz::UTC), later);
    }
}
