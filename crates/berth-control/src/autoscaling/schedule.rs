//! Scheduled-action schedules (spec B.4): parsing `at(…)`, `rate(…)` and `cron(…)` and
//! finding the next run. `PutScheduledAction` calls [`Schedule::parse`] and [`check_timezone`]
//! to validate; the scheduled-action task calls [`Schedule::next_after`] with the last run (or
//! the creation time) to know when the action is due.
//!
//! Must not: read a clock, touch the store or the system's zoneinfo (time zones come from the
//! tz database bundled into `jiff`, so results are the same on every machine).
//!
//! Syntax (Application Auto Scaling user guide, "Schedule recurring scaling actions"; the cron
//! fields are EventBridge's): `at(yyyy-mm-ddThh:mm:ss)`; `rate(value unit)` with a positive
//! integer value and `minute`/`hour`/`day` singular exactly when the value is 1; `cron(minutes
//! hours day-of-month month day-of-week year)`, or with a leading seconds field (seven fields).
//! Fields take `*`, values, `a-b` ranges (a range may wrap, `FRI-MON`), `,` lists and `/`
//! steps (`0/15`, `*/5`, `8-17/2`); day-of-month also `?`, `L` and `nW`; day-of-week (1–7 or
//! SUN–SAT) also `?`, `L` (Saturday), `nL` (last such weekday of the month) and `n#k` (k-th
//! such weekday); months take JAN–DEC; years 1970–2199. Names are case-insensitive. One of
//! day-of-month and day-of-week must be `?` — except that, as in the user guide's older
//! example `30 6 * * 2 *`, a `*` next to a restricted field is accepted and the restricted
//! field governs; both restricted, or both `?`, is refused.
//!
//! Runs (`next_after`): `at` and `cron` are civil times in the action's time zone (UTC by
//! default); `rate` counts fixed intervals from StartTime (from the Unix epoch when there is
//! none). With a StartTime, a recurring action also runs at StartTime itself (user guide:
//! "Application Auto Scaling performs the action at this time, and then performs the action
//! based on the specified recurrence"). Nothing runs before StartTime or after EndTime.
//!
//! Daylight saving: a civil time skipped by a spring-forward gap runs late, shifted by the
//! gap's length (02:30 on a day whose clocks jump 02:00→03:00 runs at 03:30); a civil time
//! repeated by a fall-back fold runs once, at its first occurrence. This is jiff's
//! "compatible" disambiguation, also what RFC 5545 and most cron daemons do.

use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, TimeZone};
use thiserror::Error;

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

/// Why a schedule or time zone is refused; `Display` is the `ValidationException` message.
/// AWS does not document these texts and none were found in public reports: they are ours.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error(
        "Invalid schedule expression: {0}. Use at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)"
    )]
    UnknownForm(String),
    #[error("Invalid at expression: {0}. Use at(yyyy-mm-ddThh:mm:ss)")]
    At(String),
    #[error("Invalid rate expression: {expr}. {reason}")]
    Rate { expr: String, reason: String },
    #[error("Invalid cron expression: {expr}. {reason}")]
    Cron { expr: String, reason: String },
    #[error("Invalid time zone: {0}. Use the canonical name of an IANA time zone")]
    UnknownTimeZone(String),
}

/// A parsed `Schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// One run at a civil time in the action's time zone.
    At(Civil),
    /// Every `value` minutes, hours or days.
    Rate {
        value: u32,
        unit: RateUnit,
    },
    Cron(Box<Cron>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    fn millis(self) -> i64 {
        match self {
            RateUnit::Minute => 60_000,
            RateUnit::Hour => 3_600_000,
            RateUnit::Day => 86_400_000,
        }
    }
}

/// A civil (wall-clock) date and time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Civil {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// Seconds since 1970-01-01T00:00:00 of the same calendar, ignoring time zones.
    fn naive_seconds(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    fn from_naive_seconds(s: i64) -> Civil {
        let days = s.div_euclid(86_400);
        let secs = s.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (secs / 3600) as u32,
            minute: (secs / 60 % 60) as u32,
            second: (secs % 60) as u32,
        }
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 1 = Sunday … 7 = Saturday, as cron counts.
fn weekday(y: i32, m: u32, d: u32) -> u32 {
    // 1970-01-01 was a Thursday (5).
    ((days_from_civil(y, m, d) + 4).rem_euclid(7) + 1) as u32
}

/// Day-of-month field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonthDays {
    /// `?`: the day-of-week field decides.
    Any,
    /// Bit `d` set for day `d` (1–31).
    Set(u32),
    /// `L`: the last day of the month.
    Last,
    /// `nW`: the weekday (Mon–Fri) nearest day `n`, within the same month.
    NearestWeekday(u32),
}

/// Day-of-week field (1 = Sunday … 7 = Saturday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeekDays {
    /// `?`: the day-of-month field decides.
    Any,
    /// Bit `d` set for weekday `d`.
    Set(u8),
    /// `nL` (`L` = `7L`): the last weekday `n` of the month.
    Last(u32),
    /// `n#k`: the k-th weekday `n` of the month.
    Nth { weekday: u32, nth: u32 },
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    month_days: MonthDays,
    months: u16,
    week_days: WeekDays,
    /// Bit `y - 1970`.
    years: [u64; 4],
}

impl Cron {
    fn day_matches(&self, y: i32, m: u32, d: u32) -> bool {
        let dim = days_in_month(y, m);
        let by_month_day = match &self.month_days {
            MonthDays::Any => None,
            MonthDays::Set(bits) => Some(bits & (1 << d) != 0),
            MonthDays::Last => Some(d == dim),
            MonthDays::NearestWeekday(n) => Some(nearest_weekday(y, m, *n) == Some(d)),
        };
        let wd = weekday(y, m, d);
        let by_week_day = match &self.week_days {
            WeekDays::Any => None,
            WeekDays::Set(bits) => Some(bits & (1 << wd) != 0),
            WeekDays::Last(n) => Some(wd == *n && d + 7 > dim),
            WeekDays::Nth { weekday, nth } => Some(wd == *weekday && (d - 1) / 7 + 1 == *nth),
        };
        match (by_month_day, by_week_day) {
            (Some(a), Some(b)) => a && b,
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => true,
        }
    }

    fn has_year(&self, y: i32) -> bool {
        if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
            return false;
        }
        let i = (y - MIN_YEAR) as usize;
        self.years[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether a civil time matches every field.
    pub fn matches(&self, c: &Civil) -> bool {
        self.has_year(c.year)
            && self.months & (1 << c.month) != 0
            && self.day_matches(c.year, c.month, c.day)
            && self.hours & (1 << c.hour) != 0
            && self.minutes & (1 << c.minute) != 0
            && self.seconds & (1 << c.second) != 0
    }

    /// The first matching civil time at or after `from`.
    fn next_civil(&self, from: Civil) -> Option<Civil> {
        let from = if from.year < MIN_YEAR {
            Civil {
                year: MIN_YEAR,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
            }
        } else {
            from
        };
        for year in from.year..=MAX_YEAR {
            if !self.has_year(year) {
                continue;
            }
            let first_year = year == from.year;
            for month in (if first_year { from.month } else { 1 })..=12 {
                if self.months & (1 << month) == 0 {
                    continue;
                }
                let first_month = first_year && month == from.month;
                for day in (if first_month { from.day } else { 1 })..=days_in_month(year, month) {
                    if !self.day_matches(year, month, day) {
                        continue;
                    }
                    let first_day = first_month && day == from.day;
                    for hour in (if first_day { from.hour } else { 0 })..24 {
                        if self.hours & (1 << hour) == 0 {
                            continue;
                        }
                        let first_hour = first_day && hour == from.hour;
                        for minute in (if first_hour { from.minute } else { 0 })..60 {
                            if self.minutes & (1 << minute) == 0 {
                                continue;
                            }
                            let first_minute = first_hour && minute == from.minute;
                            for second in (if first_minute { from.second } else { 0 })..60 {
                                if self.seconds & (1 << second) != 0 {
                                    return Some(Civil {
                                        year,
                                        month,
                                        day,
                                        hour,
                                        minute,
                                        second,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        None
    }
}

/// `nW`: the weekday nearest day `n` without leaving the month (Quartz's rule).
fn nearest_weekday(y: i32, m: u32, n: u32) -> Option<u32> {
    let dim = days_in_month(y, m);
    if n > dim {
        return None;
    }
    Some(match weekday(y, m, n) {
        7 if n == 1 => 3,       // Saturday the 1st → Monday the 3rd
        7 => n - 1,             // Saturday → Friday
        1 if n == dim => n - 2, // Sunday the last → Friday
        1 => n + 1,             // Sunday → Monday
        _ => n,
    })
}

/// Resolves a time zone name (`None` is UTC).
fn zone(name: Option<&str>) -> Result<TimeZone, ScheduleError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|_| ScheduleError::UnknownTimeZone(n.to_string())),
    }
}

/// Validates a `Timezone` parameter against the bundled IANA database.
pub fn check_timezone(name: &str) -> Result<(), ScheduleError> {
    zone(Some(name)).map(|_| ())
}

fn ts(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// The civil time of an instant in a zone.
fn civil_at(tz: &TimeZone, at: Timestamp) -> Civil {
    let dt = tz.to_datetime(at);
    Civil {
        year: i32::from(dt.year()),
        month: dt.month() as u32,
        day: dt.day() as u32,
        hour: dt.hour() as u32,
        minute: dt.minute() as u32,
        second: dt.second() as u32,
    }
}

/// The instant (ms) a civil time runs at: gaps shift forward, folds take the first pass.
fn resolve(tz: &TimeZone, c: &Civil) -> Option<i64> {
    let dt = jiff::civil::DateTime::new(
        i16::try_from(c.year).ok()?,
        c.month as i8,
        c.day as i8,
        c.hour as i8,
        c.minute as i8,
        c.second as i8,
        0,
    )
    .ok()?;
    let amb = tz.to_ambiguous_timestamp(dt);
    let offset = match amb.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { before, .. } | AmbiguousOffset::Fold { before, .. } => before,
    };
    Some(c.naive_seconds() * 1000 - i64::from(offset.seconds()) * 1000)
}

/// The largest change of UTC offset within a day either side of `at`, in seconds: how far the
/// civil → instant mapping can be out of order near `at`.
fn offset_jitter(tz: &TimeZone, at_ms: i64) -> i64 {
    let off = |ms: i64| ts(ms).map(|t| i64::from(tz.to_offset(t).seconds()));
    let day = 25 * 3_600_000;
    let (Some(a), Some(b), Some(c)) = (off(at_ms - day), off(at_ms), off(at_ms + day)) else {
        return 0;
    };
    (a - b).abs().max((b - c).abs())
}

impl Cron {
    /// The first run strictly after `after_ms` in zone `tz`.
    fn next_run(&self, tz: &TimeZone, after_ms: i64) -> Option<i64> {
        let after = ts(after_ms)?;
        // Civil times just before `after` that fall in a gap run shifted forward, possibly
        // after `after`: look back twice the offset change when there is one nearby.
        let jitter = offset_jitter(tz, after_ms);
        let mut from = Civil::from_naive_seconds(civil_at(tz, after).naive_seconds() - 2 * jitter);
        // (instant, civil naive seconds up to which a later civil time may still map earlier)
        let mut best: Option<(i64, i64)> = None;
        while let Some(c) = self.next_civil(from) {
            let naive = c.naive_seconds();
            if best.is_some_and(|(_, limit)| naive > limit) {
                break;
            }
            if let Some(at) = resolve(tz, &c)
                && at > after_ms
                && best.is_none_or(|(b, _)| at < b)
            {
                // Later civil times can only map earlier within a gap's length of this one.
                let limit = best.map_or_else(|| naive + 2 * offset_jitter(tz, at), |(_, l)| l);
                best = Some((at, limit));
            }
            if best.is_some_and(|(_, limit)| naive >= limit) {
                break;
            }
            from = Civil::from_naive_seconds(naive + 1);
        }
        best.map(|(at, _)| at)
    }
}

impl Schedule {
    /// Parses a `Schedule` parameter.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        if let Some(body) = expr.strip_prefix("at(").and_then(|s| s.strip_suffix(')')) {
            parse_at(body)
                .map(Schedule::At)
                .ok_or_else(|| ScheduleError::At(expr.to_string()))
        } else if let Some(body) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            parse_rate(body).map_err(|reason| ScheduleError::Rate {
                expr: expr.to_string(),
                reason,
            })
        } else if let Some(body) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            parse_cron(body)
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(|reason| ScheduleError::Cron {
                    expr: expr.to_string(),
                    reason,
                })
        } else {
            Err(ScheduleError::UnknownForm(expr.to_string()))
        }
    }

    /// Whether the schedule runs more than once.
    pub fn is_recurring(&self) -> bool {
        !matches!(self, Schedule::At(_))
    }

    /// The next run strictly after `after_ms` within `[start_ms, end_ms]` (epoch ms, both
    /// optional), with civil times in `timezone` (IANA name; `None` is UTC), or `None` when
    /// there is none. For a recurring schedule StartTime itself is a run. `rate` intervals
    /// count from `start_ms`, or from the Unix epoch without one (pass the action's creation
    /// time as `start_ms` to count from it). Errors only for an unknown time zone.
    pub fn next_after(
        &self,
        timezone: Option<&str>,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
        after_ms: i64,
    ) -> Result<Option<i64>, ScheduleError> {
        let tz = zone(timezone)?;
        let in_window = |t: i64| start_ms.is_none_or(|s| t >= s) && end_ms.is_none_or(|e| t <= e);
        let next = match self {
            Schedule::At(c) => resolve(&tz, c).filter(|&t| t > after_ms),
            Schedule::Rate { value, unit } => {
                let every = i64::from(*value) * unit.millis();
                let anchor = start_ms.unwrap_or(0);
                if after_ms < anchor {
                    Some(anchor)
                } else {
                    let k = (after_ms - anchor) / every + 1;
                    k.checked_mul(every).and_then(|d| anchor.checked_add(d))
                }
            }
            Schedule::Cron(cron) => {
                let from = match start_ms {
                    Some(s) if s > after_ms => s - 1,
                    _ => after_ms,
                };
                let run = cron.next_run(&tz, from);
                let start_run = start_ms.filter(|&s| s > after_ms);
                match (run, start_run) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        };
        Ok(next.filter(|&t| in_window(t)))
    }
}

fn parse_at(body: &str) -> Option<Civil> {
    let b = body.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, &ch)| match i {
            4 | 7 => ch == b'-',
            10 => ch == b'T',
            13 | 16 => ch == b':',
            _ => ch.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| body.get(r)?.parse::<u32>().ok();
    let c = Civil {
        year: i32::try_from(num(0..4)?).ok()?,
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
    };
    let valid = (1..=12).contains(&c.month)
        && (1..=days_in_month(c.year, c.month)).contains(&c.day)
        && c.hour < 24
        && c.minute < 60
        && c.second < 60;
    valid.then_some(c)
}

fn parse_rate(body: &str) -> Result<Schedule, String> {
    let mut parts = body.split(' ').filter(|p| !p.is_empty());
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("Use rate(value unit)".into());
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("The value must be a positive integer".into());
    }
    let value: u32 = value
        .parse()
        .map_err(|_| "The value must be a positive integer".to_string())?;
    if value == 0 {
        return Err("The value must be a positive integer".into());
    }
    let (unit, plural) = match unit {
        "minute" => (RateUnit::Minute, false),
        "minutes" => (RateUnit::Minute, true),
        "hour" => (RateUnit::Hour, false),
        "hours" => (RateUnit::Hour, true),
        "day" => (RateUnit::Day, false),
        "days" => (RateUnit::Day, true),
        _ => return Err("The unit must be minute, minutes, hour, hours, day or days".into()),
    };
    if plural != (value > 1) {
        return Err(if value == 1 {
            "A value of 1 takes a singular unit (minute, hour, day)".into()
        } else {
            "A value greater than 1 takes a plural unit (minutes, hours, days)".into()
        });
    }
    Ok(Schedule::Rate { value, unit })
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One cron field's name, range and names.
struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
}

const SECONDS: Field = Field {
    name: "Seconds",
    lo: 0,
    hi: 59,
    names: &[],
};
const MINUTES: Field = Field {
    name: "Minutes",
    lo: 0,
    hi: 59,
    names: &[],
};
const HOURS: Field = Field {
    name: "Hours",
    lo: 0,
    hi: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "Day-of-month",
    lo: 1,
    hi: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "Month",
    lo: 1,
    hi: 12,
    names: &MONTH_NAMES,
};
const DAY_OF_WEEK: Field = Field {
    name: "Day-of-week",
    lo: 1,
    hi: 7,
    names: &DAY_NAMES,
};
const YEAR: Field = Field {
    name: "Year",
    lo: MIN_YEAR as u32,
    hi: MAX_YEAR as u32,
    names: &[],
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            return Ok(self.lo + i as u32);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{} field has an invalid value '{s}'", self.name));
        }
        match s.parse::<u32>() {
            Ok(v) if (self.lo..=self.hi).contains(&v) => Ok(v),
            _ => Err(format!(
                "{} field value {s} is outside {}-{}",
                self.name, self.lo, self.hi
            )),
        }
    }

    /// Parses `*`, values, ranges, lists and steps into the set of values (a `Vec<bool>`
    /// indexed by value − lo).
    fn set(&self, text: &str) -> Result<Vec<bool>, String> {
        let size = (self.hi - self.lo + 1) as usize;
        let mut set = vec![false; size];
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 =
                        s.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                            format!("{} field has an invalid step '{s}'", self.name)
                        })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (start, end) = if range == "*" {
                (self.lo, self.hi)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let v = self.value(range)?;
                // `a/n` runs from a to the end of the range.
                (v, if step.is_some() { self.hi } else { v })
            };
            let step = step.unwrap_or(1) as usize;
            // A wrapping range (FRI-MON, 22-2) goes through the end of the field's range.
            let len = if end >= start {
                (end - start) as usize + 1
            } else {
                (self.hi - start + 1 + end - self.lo + 1) as usize
            };
            for k in (0..len).step_by(step) {
                let idx = ((start - self.lo) as usize + k) % size;
                set[idx] = true;
            }
        }
        Ok(set)
    }

    fn bits(&self, text: &str) -> Result<u64, String> {
        Ok(self
            .set(text)?
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .fold(0u64, |acc, (i, _)| acc | 1 << (i as u32 + self.lo)))
    }
}

fn parse_cron(body: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        6 => (None, &fields[..]),
        7 => (Some(fields[0]), &fields[1..]),
        n => {
            return Err(format!(
                "Expected 6 fields (minutes hours day-of-month month day-of-week year), found {n}"
            ));
        }
    };
    let [minutes, hours, dom, month, dow, year] = rest else {
        return Err("Expected 6 fields".into());
    };
    let seconds = match seconds {
        Some(s) => SECONDS.bits(s)?,
        None => 1,
    };
    let months = MONTH.bits(month)? as u16;
    let years_set = YEAR.set(year)?;
    let mut years = [0u64; 4];
    for (i, on) in years_set.iter().enumerate() {
        if *on {
            years[i / 64] |= 1 << (i % 64);
        }
    }
    let (mut month_days, dom_star) = parse_month_days(dom)?;
    let (mut week_days, dow_star) = parse_week_days(dow)?;
    match (&month_days, &week_days) {
        (MonthDays::Any, WeekDays::Any) => {
            return Err("Day-of-month and day-of-week cannot both be '?'".into());
        }
        (MonthDays::Any, _) | (_, WeekDays::Any) => {}
        _ if dom_star => month_days = MonthDays::Any,
        _ if dow_star => week_days = WeekDays::Any,
        _ => {
            return Err(
                "Day-of-month and day-of-week cannot both be specified: use '?' in one of them"
                    .into(),
            );
        }
    }
    Ok(Cron {
        seconds,
        minutes: MINUTES.bits(minutes)?,
        hours: HOURS.bits(hours)? as u32,
        month_days,
        months,
        week_days,
        years,
    })
}

/// Returns the field and whether it was a bare `*`.
fn parse_month_days(text: &str) -> Result<(MonthDays, bool), String> {
    let upper = text.to_ascii_uppercase();
    if upper == "?" {
        return Ok((MonthDays::Any, false));
    }
    if upper == "L" {
        return Ok((MonthDays::Last, false));
    }
    if let Some(n) = upper.strip_suffix('W') {
        let n = DAY_OF_MONTH
            .value(n)
            .map_err(|_| format!("Day-of-month field has an invalid value '{text}'"))?;
        return Ok((MonthDays::NearestWeekday(n), false));
    }
    if upper.contains(['L', 'W', '#', '?']) {
        return Err(format!("Day-of-month field has an invalid value '{text}'"));
    }
    Ok((MonthDays::Set(DAY_OF_MONTH.bits(text)? as u32), text == "*"))
}

fn parse_week_days(text: &str) -> Result<(WeekDays, bool), String> {
    let upper = text.to_ascii_uppercase();
    if upper == "?" {
        return Ok((WeekDays::Any, false));
    }
    if upper == "L" {
        return Ok((WeekDays::Last(7), false));
    }
    if let Some(n) = upper.strip_suffix('L') {
        let n = DAY_OF_WEEK.value(n)?;
        return Ok((WeekDays::Last(n), false));
    }
    if let Some((d, k)) = upper.split_once('#') {
        let weekday = DAY_OF_WEEK.value(d)?;
        let nth = k
            .parse::<u32>()
            .ok()
            .filter(|k| (1..=5).contains(k))
            .ok_or_else(|| format!("Day-of-week field has an invalid occurrence '{k}' (1-5)"))?;
        return Ok((WeekDays::Nth { weekday, nth }, false));
    }
    if upper.contains(['L', '#', '?']) {
        return Err(format!("Day-of-week field has an invalid value '{text}'"));
    }
    Ok((WeekDays::Set(DAY_OF_WEEK.bits(text)? as u8), text == "*"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Epoch ms of a UTC civil time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: 0,
        }
        .naive_seconds()
            * 1000
    }

    fn next(expr: &str, after: i64) -> Option<i64> {
        Schedule::parse(expr)
            .unwrap()
            .next_after(None, None, None, after)
            .unwrap()
    }

    /// The first `n` runs after `after`, in UTC.
    fn runs(expr: &str, tz: Option<&str>, after: i64, n: usize) -> Vec<i64> {
        let s = Schedule::parse(expr).unwrap();
        let mut out = Vec::new();
        let mut t = after;
        for _ in 0..n {
            match s.next_after(tz, None, None, t).unwrap() {
                Some(r) => {
                    out.push(r);
                    t = r;
                }
                None => break,
            }
        }
        out
    }

    fn bad(expr: &str) -> String {
        Schedule::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn calendar_helpers_agree_with_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(weekday(2024, 1, 1), 2); // Monday
        assert_eq!(weekday(2023, 12, 31), 1); // Sunday
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(utc(2024, 3, 10, 7, 0), 1_710_054_000_000);
    }

    // ---- at ----

    #[test]
    fn at_parses_and_runs_once() {
        let s = Schedule::parse("at(2024-06-01T12:30:00)").unwrap();
        assert!(!s.is_recurring());
        let t = utc(2024, 6, 1, 12, 30);
        assert_eq!(s.next_after(None, None, None, t - 1).unwrap(), Some(t));
        assert_eq!(s.next_after(None, None, None, t).unwrap(), None);
        // In a named zone: 12:30 in Tokyo (UTC+9) is 03:30 UTC.
        assert_eq!(
            s.next_after(Some("Asia/Tokyo"), None, None, 0).unwrap(),
            Some(utc(2024, 6, 1, 3, 30))
        );
        // Outside the window: none.
        assert_eq!(s.next_after(None, None, Some(t - 1), 0).unwrap(), None);
    }

    #[test]
    fn at_rejects_malformed_times() {
        for e in [
            "at(2024-06-01 12:30:00)",
            "at(2024-6-01T12:30:00)",
            "at(2024-06-01T12:30)",
            "at(2024-02-30T00:00:00)",
            "at(2023-02-29T00:00:00)",
            "at(2024-13-01T00:00:00)",
            "at(2024-06-01T24:00:00)",
            "at(2024-06-01T12:60:00)",
            "at(2024-06-01T12:30:00Z)",
        ] {
            assert_eq!(
                bad(e),
                format!("Invalid at expression: {e}. Use at(yyyy-mm-ddThh:mm:ss)"),
                "{e}"
            );
        }
        assert!(Schedule::parse("at(2024-02-29T00:00:00)").is_ok());
    }

    // ---- rate ----

    #[test]
    fn rate_singular_and_plural_units() {
        for (e, every) in [
            ("rate(1 minute)", 60_000),
            ("rate(5 minutes)", 300_000),
            ("rate(1 hour)", 3_600_000),
            ("rate(12 hours)", 43_200_000),
            ("rate(1 day)", 86_400_000),
            ("rate(7 days)", 604_800_000),
        ] {
            let start = utc(2024, 1, 1, 0, 0);
            let s = Schedule::parse(e).unwrap();
            assert!(s.is_recurring());
            assert_eq!(
                s.next_after(None, Some(start), None, start).unwrap(),
                Some(start + every)
            );
            assert_eq!(
                s.next_after(None, Some(start), None, start + every - 1)
                    .unwrap(),
                Some(start + every)
            );
        }
        for e in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(2 hour)",
            "rate(1 days)",
            "rate(0 minutes)",
            "rate(-1 minute)",
            "rate(5 weeks)",
            "rate(5)",
            "rate(five minutes)",
            "rate(1.5 hours)",
            "rate(5 minutes extra)",
            "rate(99999999999 minutes)",
        ] {
            assert!(
                bad(e).starts_with(&format!("Invalid rate expression: {e}. ")),
                "{e}"
            );
        }
        assert!(
            bad("rate(1 minutes)")
                .ends_with("A value of 1 takes a singular unit (minute, hour, day)")
        );
    }

    #[test]
    fn rate_counts_from_start_and_stops_at_end() {
        let s = Schedule::parse("rate(10 minutes)").unwrap();
        let start = utc(2024, 1, 1, 8, 3);
        let end = utc(2024, 1, 1, 8, 23);
        // Before StartTime: StartTime is the first run.
        assert_eq!(
            s.next_after(None, Some(start), Some(end), 0).unwrap(),
            Some(start)
        );
        assert_eq!(
            s.next_after(None, Some(start), Some(end), start).unwrap(),
            Some(utc(2024, 1, 1, 8, 13))
        );
        assert_eq!(
            s.next_after(None, Some(start), Some(end), utc(2024, 1, 1, 8, 13))
                .unwrap(),
            Some(end)
        );
        assert_eq!(
            s.next_after(None, Some(start), Some(end), end).unwrap(),
            None
        );
        // Without StartTime intervals count from the epoch; the time zone is irrelevant.
        assert_eq!(
            s.next_after(Some("Asia/Kolkata"), None, None, utc(2024, 1, 1, 8, 3))
                .unwrap(),
            Some(utc(2024, 1, 1, 8, 10))
        );
    }

    // ---- cron: syntax ----

    #[test]
    fn cron_user_guide_examples() {
        let t = utc(2024, 1, 1, 0, 0); // a Monday
        // 0 10 * * ? *: 10:00 every day.
        assert_eq!(
            runs("cron(0 10 * * ? *)", None, t, 2),
            vec![utc(2024, 1, 1, 10, 0), utc(2024, 1, 2, 10, 0)]
        );
        // 15 12 * * ? *: 12:15 every day.
        assert_eq!(
            next("cron(15 12 * * ? *)", t),
            Some(utc(2024, 1, 1, 12, 15))
        );
        // 0 18 ? * MON-FRI *: 18:00 on weekdays (Fri 5th → Mon 8th).
        assert_eq!(
            runs("cron(0 18 ? * MON-FRI *)", None, utc(2024, 1, 5, 0, 0), 2),
            vec![utc(2024, 1, 5, 18, 0), utc(2024, 1, 8, 18, 0)]
        );
        // 0 8 1 * ? *: 08:00 on the 1st.
        assert_eq!(
            runs("cron(0 8 1 * ? *)", None, t, 2),
            vec![utc(2024, 1, 1, 8, 0), utc(2024, 2, 1, 8, 0)]
        );
        // 0/15 * * * ? *: every 15 minutes.
        assert_eq!(
            runs("cron(0/15 * * * ? *)", None, t, 3),
            vec![
                utc(2024, 1, 1, 0, 15),
                utc(2024, 1, 1, 0, 30),
                utc(2024, 1, 1, 0, 45)
            ]
        );
        // 0/10 * ? * MON-FRI *: every 10 minutes on weekdays (Sat 6th → Mon 8th 00:00).
        assert_eq!(
            next("cron(0/10 * ? * MON-FRI *)", utc(2024, 1, 6, 0, 0)),
            Some(utc(2024, 1, 8, 0, 0))
        );
        // 0/5 8-17 ? * MON-FRI *: every 5 minutes 08:00–17:55 on weekdays.
        assert_eq!(
            next("cron(0/5 8-17 ? * MON-FRI *)", utc(2024, 1, 1, 17, 55)),
            Some(utc(2024, 1, 2, 8, 0))
        );
        assert_eq!(
            next("cron(0/5 8-17 ? * MON-FRI *)", utc(2024, 1, 1, 17, 50)),
            Some(utc(2024, 1, 1, 17, 55))
        );
        // 30 6 ? * MON *: Mondays at 06:30; the older example's `* * 2` means the same.
        assert_eq!(
            next("cron(30 6 ? * MON *)", utc(2024, 1, 2, 0, 0)),
            Some(utc(2024, 1, 8, 6, 30))
        );
        assert_eq!(
            next("cron(30 6 * * 2 *)", utc(2024, 1, 2, 0, 0)),
            Some(utc(2024, 1, 8, 6, 30))
        );
    }

    #[test]
    fn cron_lists_ranges_steps_and_names() {
        let t = utc(2024, 1, 1, 0, 0);
        assert_eq!(
            runs("cron(5,20-22 3 * * ? *)", None, t, 4),
            vec![
                utc(2024, 1, 1, 3, 5),
                utc(2024, 1, 1, 3, 20),
                utc(2024, 1, 1, 3, 21),
                utc(2024, 1, 1, 3, 22)
            ]
        );
        assert_eq!(
            runs("cron(0 8-16/4 * * ? *)", None, t, 4),
            vec![
                utc(2024, 1, 1, 8, 0),
                utc(2024, 1, 1, 12, 0),
                utc(2024, 1, 1, 16, 0),
                utc(2024, 1, 2, 8, 0)
            ]
        );
        assert_eq!(
            runs("cron(0 0 1 jan,Jul ? *)", None, t, 2),
            vec![utc(2024, 7, 1, 0, 0), utc(2025, 1, 1, 0, 0)]
        );
        assert_eq!(
            runs("cron(0 0 1 */6 ? *)", None, t, 2),
            vec![utc(2024, 7, 1, 0, 0), utc(2025, 1, 1, 0, 0)]
        );
        // Wrapping ranges: FRI-MON is Fri, Sat, Sun, Mon; 22-1 hours.
        assert_eq!(
            runs("cron(0 12 ? * FRI-MON *)", None, utc(2024, 1, 3, 0, 0), 4),
            vec![
                utc(2024, 1, 5, 12, 0),
                utc(2024, 1, 6, 12, 0),
                utc(2024, 1, 7, 12, 0),
                utc(2024, 1, 8, 12, 0)
            ]
        );
        assert_eq!(
            runs("cron(0 22-1 * * ? *)", None, utc(2024, 1, 1, 12, 0), 4),
            vec![
                utc(2024, 1, 1, 22, 0),
                utc(2024, 1, 1, 23, 0),
                utc(2024, 1, 2, 0, 0),
                utc(2024, 1, 2, 1, 0)
            ]
        );
        // Year field.
        assert_eq!(
            next("cron(0 0 1 1 ? 2030-2031)", t),
            Some(utc(2030, 1, 1, 0, 0))
        );
        assert_eq!(next("cron(0 0 1 1 ? 2020)", t), None);
        // Seven fields: seconds first.
        assert_eq!(
            next("cron(30 0 12 * * ? *)", t),
            Some(utc(2024, 1, 1, 12, 0) + 30_000)
        );
    }

    #[test]
    fn cron_rejects_invalid_expressions() {
        for e in [
            "cron(0 10 * * ?)",
            "cron(0 10 * * ? * * *)",
            "cron(60 10 * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 10 0 * ? *)",
            "cron(0 10 32 * ? *)",
            "cron(0 10 * 13 ? *)",
            "cron(0 10 ? * 8 *)",
            "cron(0 10 ? * 0 *)",
            "cron(0 10 * * ? 1969)",
            "cron(0 10 * * ? 2200)",
            "cron(0 10 ? * ? *)",
            "cron(0 10 1 * MON *)",
            "cron(*/0 10 * * ? *)",
            "cron(a 10 * * ? *)",
            "cron(0 10 * FOO ? *)",
            "cron(0 10 ? * 2#6 *)",
            "cron(0 10 ? * 8#1 *)",
            "cron(0 10 32W * ? *)",
            "cron(0 10 L * L *)",
            "cron(0 10 * * ? *",
            "cron(0 10 1-L * ? *)",
            "cron(0 10 ? * MON#X *)",
            "cron(0 10 ? * ?L *)",
            "cron(,0 10 * * ? *)",
        ] {
            let msg = bad(e);
            assert!(
                msg.starts_with(&format!("Invalid cron expression: {e}. "))
                    || msg.starts_with("Invalid schedule expression"),
                "{e}: {msg}"
            );
        }
        assert_eq!(
            bad("cron(0 10 ? * ? *)"),
            "Invalid cron expression: cron(0 10 ? * ? *). Day-of-month and day-of-week cannot both be '?'"
        );
        assert_eq!(
            bad("cron(0 10 1 * MON *)"),
            "Invalid cron expression: cron(0 10 1 * MON *). Day-of-month and day-of-week cannot both be specified: use '?' in one of them"
        );
        assert_eq!(
            bad("every day"),
            "Invalid schedule expression: every day. Use at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)"
        );
    }

    // ---- cron: calendar ----

    #[test]
    fn cron_across_month_ends() {
        // The 31st skips 30-day months and February.
        assert_eq!(
            runs("cron(0 0 31 * ? *)", None, utc(2024, 1, 31, 0, 0), 3),
            vec![
                utc(2024, 3, 31, 0, 0),
                utc(2024, 5, 31, 0, 0),
                utc(2024, 7, 31, 0, 0)
            ]
        );
        // 23:59 on Dec 31 → next year.
        assert_eq!(
            runs("cron(59 23 * * ? *)", None, utc(2024, 12, 31, 23, 59), 1),
            vec![utc(2025, 1, 1, 23, 59)]
        );
        assert_eq!(
            next("cron(0 0 1 1 ? *)", utc(2024, 12, 31, 23, 59)),
            Some(utc(2025, 1, 1, 0, 0))
        );
    }

    #[test]
    fn cron_leap_years() {
        assert_eq!(
            runs("cron(0 12 29 2 ? *)", None, utc(2024, 3, 1, 0, 0), 3),
            vec![
                utc(2028, 2, 29, 12, 0),
                utc(2032, 2, 29, 12, 0),
                utc(2036, 2, 29, 12, 0)
            ]
        );
        // 2100 is not a leap year: Feb 29 2096 → 2104.
        assert_eq!(
            next("cron(0 0 29 2 ? *)", utc(2096, 3, 1, 0, 0)),
            Some(utc(2104, 2, 29, 0, 0))
        );
        // Never: Feb 30.
        assert_eq!(next("cron(0 0 30 2 ? *)", utc(2024, 1, 1, 0, 0)), None);
        // L in February.
        assert_eq!(
            runs("cron(0 0 L 2 ? *)", None, utc(2024, 1, 1, 0, 0), 2),
            vec![utc(2024, 2, 29, 0, 0), utc(2025, 2, 28, 0, 0)]
        );
    }

    #[test]
    fn cron_last_weekday_and_nth() {
        // L: last day of each month.
        assert_eq!(
            runs("cron(0 0 L * ? *)", None, utc(2024, 1, 1, 0, 0), 3),
            vec![
                utc(2024, 1, 31, 0, 0),
                utc(2024, 2, 29, 0, 0),
                utc(2024, 3, 31, 0, 0)
            ]
        );
        // 15W: Jun 15 2024 is a Saturday → Friday 14th; Sep 15 2024 a Sunday → Monday 16th;
        // Jan 15 2024 a Monday → 15th.
        assert_eq!(
            next("cron(0 9 15W 6 ? *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 6, 14, 9, 0))
        );
        assert_eq!(
            next("cron(0 9 15W 9 ? *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 9, 16, 9, 0))
        );
        assert_eq!(
            next("cron(0 9 15W 1 ? *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 1, 15, 9, 0))
        );
        // 1W never leaves the month: Jun 1 2024 is a Saturday → Monday 3rd; 31W in June never.
        assert_eq!(
            next("cron(0 9 1W 6 ? *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 6, 3, 9, 0))
        );
        // 30W: Jun 30 2024 is a Sunday, the last day → Friday 28th.
        assert_eq!(
            next("cron(0 9 30W 6 ? 2024)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 6, 28, 9, 0))
        );
        assert_eq!(next("cron(0 9 31W 6 ? *)", utc(2024, 1, 1, 0, 0)), None);
        // 3#2: the second Tuesday (Jan 9 2024, Feb 13 2024).
        assert_eq!(
            runs("cron(0 9 ? * 3#2 *)", None, utc(2024, 1, 1, 0, 0), 2),
            vec![utc(2024, 1, 9, 9, 0), utc(2024, 2, 13, 9, 0)]
        );
        assert_eq!(
            next("cron(0 9 ? * TUE#2 *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 1, 9, 9, 0))
        );
        // 6#5: fifth Friday: March 29 2024 (then May 31 2024).
        assert_eq!(
            runs("cron(0 9 ? * 6#5 *)", None, utc(2024, 1, 1, 0, 0), 2),
            vec![utc(2024, 3, 29, 9, 0), utc(2024, 5, 31, 9, 0)]
        );
        // 6L: last Friday (Jan 26 2024); L alone: last Saturday... of the week: every Saturday
        // that is the month's last (Jan 27 2024).
        assert_eq!(
            next("cron(0 9 ? * 6L *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 1, 26, 9, 0))
        );
        assert_eq!(
            next("cron(0 9 ? * FRIL *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 1, 26, 9, 0))
        );
        assert_eq!(
            next("cron(0 9 ? * L *)", utc(2024, 1, 1, 0, 0)),
            Some(utc(2024, 1, 27, 9, 0))
        );
    }

    // ---- windows ----

    #[test]
    fn cron_runs_at_start_time_then_recurs_until_end() {
        let s = Schedule::parse("cron(0 18 ? * MON-FRI *)").unwrap();
        let start = utc(2024, 1, 6, 9, 0); // a Saturday
        let end = utc(2024, 1, 9, 18, 0);
        let mut t = 0;
        let mut got = Vec::new();
        while let Some(r) = s.next_after(None, Some(start), Some(end), t).unwrap() {
            got.push(r);
            t = r;
        }
        assert_eq!(
            got,
            vec![start, utc(2024, 1, 8, 18, 0), utc(2024, 1, 9, 18, 0)]
        );
    }

    // ---- time zones ----

    #[test]
    fn timezone_unknown_is_refused() {
        assert_eq!(
            check_timezone("Mars/Olympus_Mons").unwrap_err().to_string(),
            "Invalid time zone: Mars/Olympus_Mons. Use the canonical name of an IANA time zone"
        );
        assert_eq!(check_timezone("Etc/GMT+9"), Ok(()));
        assert_eq!(check_timezone("Pacific/Tahiti"), Ok(()));
        let s = Schedule::parse("cron(0 10 * * ? *)").unwrap();
        assert!(s.next_after(Some("Nowhere/Town"), None, None, 0).is_err());
    }

    #[test]
    fn timezone_shifts_cron_by_offset() {
        // 09:00 in Etc/GMT+9 (UTC−9, POSIX sign) is 18:00 UTC.
        let s = Schedule::parse("cron(0 9 * * ? *)").unwrap();
        assert_eq!(
            s.next_after(Some("Etc/GMT+9"), None, None, utc(2024, 1, 1, 0, 0))
                .unwrap(),
            Some(utc(2024, 1, 1, 18, 0))
        );
    }

    #[test]
    fn timezone_dst_spring_forward_runs_late_once() {
        // New York, 2024-03-10: 02:00 EST → 03:00 EDT. 02:30 does not exist: it runs at 03:30
        // EDT (07:30 UTC). The day before and after run at 02:30 local (EST 07:30, EDT 06:30).
        let tz = Some("America/New_York");
        assert_eq!(
            runs("cron(30 2 * * ? *)", tz, utc(2024, 3, 9, 0, 0), 3),
            vec![
                utc(2024, 3, 9, 7, 30),
                utc(2024, 3, 10, 7, 30),
                utc(2024, 3, 11, 6, 30)
            ]
        );
        // Every 30 minutes across the gap: 01:30 EST, then 02:00/02:30 (skipped) run at
        // 03:00/03:30 EDT, colliding with 03:00/03:30 themselves — each instant runs once.
        assert_eq!(
            runs("cron(0/30 * * * ? *)", tz, utc(2024, 3, 10, 6, 0), 5),
            vec![
                utc(2024, 3, 10, 6, 30), // 01:30 EST
                utc(2024, 3, 10, 7, 0),  // 03:00 EDT (02:00 shifted, and 03:00)
                utc(2024, 3, 10, 7, 30), // 03:30 EDT
                utc(2024, 3, 10, 8, 0),  // 04:00 EDT
                utc(2024, 3, 10, 8, 30),
            ]
        );
        // A run in the gap is not lost when `after` lies between the jump and the shifted
        // time: 02:50 runs at 03:50 EDT, 03:10 at 03:10 EDT.
        assert_eq!(
            runs("cron(10,50 2,3 * * ? *)", tz, utc(2024, 3, 10, 7, 5), 3),
            vec![
                utc(2024, 3, 10, 7, 10),
                utc(2024, 3, 10, 7, 50),
                utc(2024, 3, 11, 6, 10)
            ]
        );
    }

    #[test]
    fn timezone_dst_fall_back_runs_once() {
        // New York, 2024-11-03: 02:00 EDT → 01:00 EST; 01:30 happens twice and runs at the
        // first (05:30 UTC), not the second (06:30 UTC).
        let tz = Some("America/New_York");
        assert_eq!(
            runs("cron(30 1 * * ? *)", tz, utc(2024, 11, 2, 12, 0), 2),
            vec![utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]
        );
        // Hourly: 01:00 EDT, then 02:00 EST — the repeated 01:00 EST does not run again.
        assert_eq!(
            runs("cron(0 * * * ? *)", tz, utc(2024, 11, 3, 4, 30), 3),
            vec![
                utc(2024, 11, 3, 5, 0),
                utc(2024, 11, 3, 7, 0),
                utc(2024, 11, 3, 8, 0)
            ]
        );
    }

    #[test]
    fn timezone_at_in_a_gap_runs_shifted() {
        let s = Schedule::parse("at(2024-03-31T02:30:00)").unwrap();
        // Europe/Berlin jumps 02:00 CET → 03:00 CEST: 02:30 runs at 03:30 CEST = 01:30 UTC.
        assert_eq!(
            s.next_after(Some("Europe/Berlin"), None, None, 0).unwrap(),
            Some(utc(2024, 3, 31, 1, 30))
        );
    }

    // ---- properties ----

    /// Brute force: the first whole minute after `after` (UTC) that matches.
    fn brute(cron: &Cron, after: i64, limit_minutes: i64) -> Option<i64> {
        let first = after.div_euclid(60_000) + 1;
        (first..first + limit_minutes)
            .map(|m| m * 60_000)
            .find(|&t| cron.matches(&Civil::from_naive_seconds(t / 1000)))
    }

    fn field(max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (0..=max).prop_map(|v| v.to_string()),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0..=max, 1..=max.max(1)).prop_map(|(a, s)| format!("{a}/{s}")),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    proptest::proptest! {
        #[test]
        fn cron_next_matches_brute_force_in_utc(
            mi in field(59), h in field(23), dow in prop_oneof![Just("?".to_string()), Just("MON-FRI".to_string()), (1u32..=7).prop_map(|d| d.to_string())],
            after in 1_700_000_000_000i64..1_800_000_000_000,
        ) {
            let expr = format!("cron({mi} {h} {} * {dow} *)", if dow == "?" { "*" } else { "?" });
            let s = Schedule::parse(&expr).unwrap();
            let Schedule::Cron(c) = &s else { unreachable!() };
            let got = s.next_after(None, None, None, after).unwrap();
            prop_assert_eq!(got, brute(c, after, 8 * 24 * 60), "{}", expr);
        }

        #[test]
        fn next_after_is_strictly_later_and_in_window(
            after in 1_700_000_000_000i64..1_800_000_000_000,
            start in proptest::option::of(1_700_000_000_000i64..1_800_000_000_000),
            len in 0i64..10_000_000_000,
            expr in prop_oneof![
                Just("cron(0/7 * * * ? *)"), Just("rate(13 minutes)"), Just("cron(15 2 ? * SUN *)"),
                Just("cron(0 0 L * ? *)"), Just("at(2025-06-01T00:00:00)"),
            ],
            tz in prop_oneof![Just(None), Just(Some("America/New_York")), Just(Some("Australia/Lord_Howe")), Just(Some("Europe/London"))],
        ) {
            let s = Schedule::parse(expr).unwrap();
            let end = start.map(|s| s + len);
            if let Some(t) = s.next_after(tz, start, end, after).unwrap() {
                prop_assert!(t > after);
                prop_assert!(start.is_none_or(|s| t >= s));
                prop_assert!(end.is_none_or(|e| t <= e));
                // Consistent: from any point between `after` and `t` the next run is still `t`.
                let mid = after + (t - after) / 2;
                prop_assert_eq!(s.next_after(tz, start, end, mid).unwrap(), Some(t));
                if let Some(u) = s.next_after(tz, start, end, t).unwrap() {
                    prop_assert!(u > t);
                }
            }
        }

        #[test]
        fn cron_runs_match_local_fields(
            after in 1_700_000_000_000i64..1_800_000_000_000,
            tz in prop_oneof![Just("America/New_York"), Just("Europe/Berlin"), Just("Asia/Kolkata")],
        ) {
            // Away from DST gaps, a run's civil time in the zone matches the expression.
            let s = Schedule::parse("cron(45 9 ? * MON-FRI *)").unwrap();
            let Schedule::Cron(c) = &s else { unreachable!() };
            let t = s.next_after(Some(tz), None, None, after).unwrap().unwrap();
            let zone = TimeZone::get(tz).unwrap();
            let local = civil_at(&zone, Timestamp::from_millisecond(t).unwrap());
            prop_assert!(c.matches(&local), "{local:?}");
            prop_assert!(t - after <= 4 * 86_400_000);
        }
    }
}
