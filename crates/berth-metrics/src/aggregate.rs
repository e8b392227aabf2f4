//! What storage keeps per metric, per tier and per period bucket: an [`Aggregate`] (sample
//! count, sum, minimum, maximum and a bounded value distribution for percentiles), and the
//! [`Statistic`]s CloudWatch computes from it.
//!
//! Called by `metric` (one aggregate per accepted datum), `query` (merging buckets into
//! period windows) and by storage (merging a new datum into its bucket, rolling finer
//! buckets into coarser ones). Pure values: no I/O, no clock.
//!
//! # Distribution
//! * Up to [`EXACT_CAP`] distinct values are kept exactly as `(value, count)` pairs, so
//!   percentiles of small buckets are exact.
//! * Beyond that the values move into a log-scale histogram (bucket `i` holds values in
//!   `(γ^(i-1), γ^i]`, `γ = (1+α)/(1-α)`, α = [`RELATIVE_ERROR`] = 1 %) and a percentile is
//!   reported as the bucket's representative `2γ^i/(γ+1)` clamped to `[min, max]`: within
//!   1 % of a value that is really at that rank. At most [`MAX_BUCKETS`] buckets are kept;
//!   past that the lowest buckets are folded together (low percentiles of extremely wide
//!   data lose accuracy first; CloudWatch's range of 2^-360..2^360 needs ~25,000 buckets).
//! * Percentiles follow the nearest-rank rule: the smallest value whose cumulative count
//!   reaches `p/100 × SampleCount` (`p0` is the minimum, `p100` the maximum).
//!
//! # When percentiles are unavailable (AWS's documented rules)
//! * Statistic sets: "CloudWatch needs raw data points to calculate percentile statistics";
//!   a statistic set gives percentiles only when `SampleCount` is 1, or `Minimum ==
//!   Maximum` and `Sum == Minimum × SampleCount` (PutMetricData's wording; all values are
//!   then known). Otherwise the aggregate's distribution is unavailable, and so is that of
//!   anything it is merged into: such a period has no percentile datapoint.
//! * "Percentile statistics are not available for metrics when any of the metric values are
//!   negative numbers" (GetMetricStatistics): a negative value makes the distribution
//!   unavailable too.
//!
//! # Encoding
//! Serde with one-letter field names: `{"n":count,"s":sum,"lo":min,"hi":max,"d":dist}` where
//! `dist` is `{"x":[[value,count],…]}`, `{"h":{"z":zeros,"b":[[index,count],…]}}` or `"u"`.
//! A single-valued bucket is about 40 bytes in a binary serde format.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Distinct values kept exactly before switching to the histogram.
pub const EXACT_CAP: usize = 64;
/// Histogram buckets kept at most (lowest ones are folded beyond this).
pub const MAX_BUCKETS: usize = 2048;
/// The histogram's bound on the relative error of a percentile.
pub const RELATIVE_ERROR: f64 = 0.01;

const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);

/// The values of one period bucket (or of a window of merged buckets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    #[serde(rename = "n")]
    count: f64,
    #[serde(rename = "s")]
    sum: f64,
    #[serde(rename = "lo")]
    min: f64,
    #[serde(rename = "hi")]
    max: f64,
    #[serde(rename = "d")]
    dist: Distribution,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Distribution {
    /// Distinct values ascending, each with its count.
    #[serde(rename = "x")]
    Exact(Vec<(f64, f64)>),
    #[serde(rename = "h")]
    Histogram(Histogram),
    /// Percentiles cannot be computed (statistic set, or negative values).
    #[serde(rename = "u")]
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Histogram {
    /// Count of values equal to zero.
    #[serde(rename = "z")]
    zero: f64,
    /// `(index, count)` ascending by index.
    #[serde(rename = "b")]
    buckets: Vec<(i16, f64)>,
}

impl Histogram {
    fn index(v: f64) -> i16 {
        let i = (v.ln() / GAMMA.ln()).ceil();
        i.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }

    fn representative(i: i16) -> f64 {
        2.0 * GAMMA.powi(i32::from(i)) / (GAMMA + 1.0)
    }

    fn add(&mut self, v: f64, count: f64) {
        if v == 0.0 {
            self.zero += count;
            return;
        }
        let i = Self::index(v);
        match self.buckets.binary_search_by_key(&i, |&(k, _)| k) {
            Ok(pos) => self.buckets[pos].1 += count,
            Err(pos) => self.buckets.insert(pos, (i, count)),
        }
    }

    fn merge(&mut self, other: &Histogram) {
        self.zero += other.zero;
        let mut out = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        out.push((ia, ca + cb));
                        a.next();
                        b.next();
                    } else if ia < ib {
                        out.push((ia, ca));
                        a.next();
                    } else {
                        out.push((ib, cb));
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(&&x)) => {
                    out.push(x);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.buckets = out;
        self.bound();
    }

    /// Folds the lowest buckets together so at most [`MAX_BUCKETS`] remain.
    fn bound(&mut self) {
        if self.buckets.len() <= MAX_BUCKETS {
            return;
        }
        let excess = self.buckets.len() - MAX_BUCKETS;
        let folded: f64 = self.buckets[..=excess].iter().map(|&(_, c)| c).sum();
        self.buckets[excess].1 = folded;
        self.buckets.drain(..excess);
    }

    /// The value at `rank` (1-based, fractional counts allowed).
    fn at_rank(&self, rank: f64) -> Option<f64> {
        let mut seen = self.zero;
        if self.zero > 0.0 && seen >= rank {
            return Some(0.0);
        }
        for &(i, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(Self::representative(i));
            }
        }
        self.buckets.last().map(|&(i, _)| Self::representative(i))
    }
}

fn exact_to_histogram(pairs: &[(f64, f64)]) -> Histogram {
    let mut h = Histogram::default();
    for &(v, c) in pairs {
        h.add(v, c);
    }
    h.bound();
    h
}

/// Sorts `(value, count)` pairs by value and sums the counts of equal values.
fn normalize(mut pairs: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(pairs.len());
    for (v, c) in pairs {
        match out.last_mut() {
            Some(last) if last.0 == v => last.1 += c,
            _ => out.push((v, c)),
        }
    }
    out
}

fn merge_exact(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].0 == b[j].0 {
            out.push((a[i].0, a[i].1 + b[j].1));
            i += 1;
            j += 1;
        } else if a[i].0 < b[j].0 {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Distribution {
    fn from_pairs(pairs: Vec<(f64, f64)>) -> Distribution {
        if pairs.iter().any(|&(v, _)| v < 0.0) {
            return Distribution::Unavailable;
        }
        let pairs = normalize(pairs);
        if pairs.len() > EXACT_CAP {
            Distribution::Histogram(exact_to_histogram(&pairs))
        } else {
            Distribution::Exact(pairs)
        }
    }

    fn merge(&mut self, other: &Distribution) {
        let merged = match (&mut *self, other) {
            (Distribution::Unavailable, _) => return,
            (_, Distribution::Unavailable) => Distribution::Unavailable,
            (Distribution::Exact(a), Distribution::Exact(b)) => {
                let pairs = merge_exact(a, b);
                if pairs.len() > EXACT_CAP {
                    Distribution::Histogram(exact_to_histogram(&pairs))
                } else {
                    Distribution::Exact(pairs)
                }
            }
            (Distribution::Exact(a), Distribution::Histogram(h)) => {
                let mut h = h.clone();
                for &(v, c) in a.iter() {
                    h.add(v, c);
                }
                h.bound();
                Distribution::Histogram(h)
            }
            (Distribution::Histogram(h), Distribution::Exact(b)) => {
                for &(v, c) in b {
                    h.add(v, c);
                }
                h.bound();
                return;
            }
            (Distribution::Histogram(h), Distribution::Histogram(o)) => {
                h.merge(o);
                return;
            }
        };
        *self = merged;
    }
}

impl Aggregate {
    /// One raw value (`MetricDatum.Value`). The caller has checked it is finite.
    pub fn from_value(v: f64) -> Aggregate {
        Aggregate {
            count: 1.0,
            sum: v,
            min: v,
            max: v,
            dist: Distribution::from_pairs(vec![(v, 1.0)]),
        }
    }

    /// `Values` with their `Counts` (an empty `counts` means 1 each). Entries with a zero
    /// count are skipped; `None` if nothing is left. The caller has checked the lengths
    /// match and that values are finite and counts finite and non-negative.
    pub fn from_values(values: &[f64], counts: &[f64]) -> Option<Aggregate> {
        let pairs: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, counts.get(i).copied().unwrap_or(1.0)))
            .filter(|&(_, c)| c > 0.0)
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let count = pairs.iter().map(|&(_, c)| c).sum();
        let sum = pairs.iter().map(|&(v, c)| v * c).sum();
        let min = pairs.iter().map(|&(v, _)| v).fold(f64::INFINITY, f64::min);
        let max = pairs
            .iter()
            .map(|&(v, _)| v)
            .fold(f64::NEG_INFINITY, f64::max);
        Some(Aggregate {
            count,
            sum,
            min,
            max,
            dist: Distribution::from_pairs(pairs),
        })
    }

    /// A statistic set (`StatisticValues`). Percentiles stay available only when every
    /// value is known: `Minimum == Maximum` and `Sum == Minimum × SampleCount` (which covers
    /// `SampleCount == 1`). The caller has checked `count > 0` and `min <= max`.
    pub fn from_statistic_set(count: f64, sum: f64, min: f64, max: f64) -> Aggregate {
        let all_known = min == max && (sum - min * count).abs() <= 1e-9 * sum.abs().max(1.0);
        let dist = if all_known {
            Distribution::from_pairs(vec![(min, count)])
        } else {
            Distribution::Unavailable
        };
        Aggregate {
            count,
            sum,
            min,
            max,
            dist,
        }
    }

    /// Adds `other`'s samples to `self` (same metric, coarser or equal window).
    pub fn merge(&mut self, other: &Aggregate) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.dist.merge(&other.dist);
    }

    pub fn sample_count(&self) -> f64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn minimum(&self) -> f64 {
        self.min
    }

    pub fn maximum(&self) -> f64 {
        self.max
    }

    pub fn average(&self) -> f64 {
        self.sum / self.count
    }

    /// Whether percentiles can be computed (see the module doc).
    pub fn has_percentiles(&self) -> bool {
        !matches!(self.dist, Distribution::Unavailable)
    }

    /// Whether the distribution is still exact (not yet a histogram).
    pub fn is_exact(&self) -> bool {
        matches!(self.dist, Distribution::Exact(_))
    }

    /// The `p`-th percentile (`0 ≤ p ≤ 100`), nearest rank; `None` when unavailable.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if !(0.0..=100.0).contains(&p) || self.count <= 0.0 {
            return None;
        }
        let rank = p / 100.0 * self.count;
        match &self.dist {
            Distribution::Unavailable => None,
            Distribution::Exact(pairs) => {
                let mut seen = 0.0;
                for &(v, c) in pairs {
                    seen += c;
                    if seen >= rank {
                        return Some(v);
                    }
                }
                pairs.last().map(|&(v, _)| v)
            }
            Distribution::Histogram(h) => {
                if p == 0.0 {
                    return Some(self.min);
                }
                if p == 100.0 {
                    return Some(self.max);
                }
                h.at_rank(rank).map(|v| v.clamp(self.min, self.max))
            }
        }
    }

    /// The statistic's value, as GetMetricStatistics / GetMetricData report it; `None` when
    /// it does not exist for this aggregate (a percentile without a distribution).
    pub fn statistic(&self, s: &Statistic) -> Option<f64> {
        match s {
            Statistic::SampleCount => Some(self.count),
            Statistic::Average => Some(self.average()),
            Statistic::Sum => Some(self.sum),
            Statistic::Minimum => Some(self.min),
            Statistic::Maximum => Some(self.max),
            Statistic::Percentile(p) => self.percentile(p.value()),
        }
    }
}

/// Just count, sum, min and max: what the non-percentile statistics need. `query` merges
/// these instead of whole aggregates when no percentile is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(a: &Aggregate) -> Summary {
        Summary {
            count: a.count,
            sum: a.sum,
            min: a.min,
            max: a.max,
        }
    }

    pub fn merge(&mut self, a: &Aggregate) {
        self.count += a.count;
        self.sum += a.sum;
        self.min = self.min.min(a.min);
        self.max = self.max.max(a.max);
    }

    /// The statistic, `None` for percentiles (a summary has no distribution).
    pub fn statistic(&self, s: &Statistic) -> Option<f64> {
        match s {
            Statistic::SampleCount => Some(self.count),
            Statistic::Average => Some(self.sum / self.count),
            Statistic::Sum => Some(self.sum),
            Statistic::Minimum => Some(self.min),
            Statistic::Maximum => Some(self.max),
            Statistic::Percentile(_) => None,
        }
    }
}

/// A percentile as hundredths of a percent: `p99.99` is 9999, `p50` is 5000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Percentile(u16);

impl Percentile {
    /// `hundredths` must be at most 10,000 (`p100`).
    pub fn from_hundredths(hundredths: u16) -> Option<Percentile> {
        (hundredths <= 10_000).then_some(Percentile(hundredths))
    }

    pub fn hundredths(self) -> u16 {
        self.0
    }

    /// The percentile in `[0, 100]`.
    pub fn value(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// A statistic CloudWatch computes over a period: the five `Statistic` enum values and the
/// `pNN` / `pNN.N` / `pNN.NN` extended statistics (`p0.0` to `p100`). Other extended
/// statistics (`tm99`, `IQM`, `TC(…)`, …) are not supported and do not parse.
///
/// `Display` writes AWS's spelling with the fewest decimals (`p99.9`, `p50`); the API layer
/// should echo the caller's own string where a response is keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    Percentile(Percentile),
}

/// A statistic string that is not one this crate computes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported statistic {0:?}")]
pub struct UnknownStatistic(pub String);

impl FromStr for Statistic {
    type Err = UnknownStatistic;

    fn from_str(s: &str) -> Result<Statistic, UnknownStatistic> {
        let unknown = || UnknownStatistic(s.to_string());
        Ok(match s {
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => {
                let rest = s
                    .strip_prefix('p')
                    .or_else(|| s.strip_prefix('P'))
                    .ok_or_else(unknown)?;
                let (int, frac) = match rest.split_once('.') {
                    Some((i, f)) if !f.is_empty() && f.len() <= 2 => (i, f),
                    Some(_) => return Err(unknown()),
                    None => (rest, ""),
                };
                let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
                if !digits(int) || int.len() > 3 || (!frac.is_empty() && !digits(frac)) {
                    return Err(unknown());
                }
                let whole: u16 = int.parse().map_err(|_| unknown())?;
                let hundredths_frac: u16 = match frac.len() {
                    0 => 0,
                    1 => frac.parse::<u16>().map_err(|_| unknown())? * 10,
                    _ => frac.parse::<u16>().map_err(|_| unknown())?,
                };
                let total = whole
                    .checked_mul(100)
                    .and_then(|w| w.checked_add(hundredths_frac))
                    .ok_or_else(unknown)?;
                Statistic::Percentile(Percentile::from_hundredths(total).ok_or_else(unknown)?)
            }
        })
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::SampleCount => f.write_str("SampleCount"),
            Statistic::Average => f.write_str("Average"),
            Statistic::Sum => f.write_str("Sum"),
            Statistic::Minimum => f.write_str("Minimum"),
            Statistic::Maximum => f.write_str("Maximum"),
            Statistic::Percentile(p) => {
                let (whole, frac) = (p.0 / 100, p.0 % 100);
                if frac == 0 {
                    write!(f, "p{whole}")
                } else if frac % 10 == 0 {
                    write!(f, "p{whole}.{}", frac / 10)
                } else {
                    write!(f, "p{whole}.{frac:02}")
                }
            }
        }
    }
}

impl Statistic {
    /// Whether this is an extended statistic (GetMetricStatistics' `ExtendedStatistics`).
    pub fn is_extended(&self) -> bool {
        matches!(self, Statistic::Percentile(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stat(s: &str) -> Statistic {
        s.parse().unwrap()
    }

    #[test]
    fn aggregate_statistics_hand_computed() {
        // Values 1, 2, 3, 4, 10 (counts 1, 1, 2, 1, 1): n=6, sum=23.
        let a = Aggregate::from_values(&[1.0, 2.0, 3.0, 4.0, 10.0], &[1.0, 1.0, 2.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(a.statistic(&stat("SampleCount")), Some(6.0));
        assert_eq!(a.statistic(&stat("Sum")), Some(23.0));
        assert_eq!(a.statistic(&stat("Minimum")), Some(1.0));
        assert_eq!(a.statistic(&stat("Maximum")), Some(10.0));
        assert_eq!(a.statistic(&stat("Average")), Some(23.0 / 6.0));
        // Sorted: 1 2 3 3 4 10. Nearest rank: p50 → rank 3 → 3; p90 → rank 5.4 → 6th = 10;
        // p10 → rank 0.6 → 1st = 1; p0 = min; p100 = max; p66.67 → rank 4.0002 → 5th = 4.
        assert_eq!(a.statistic(&stat("p50")), Some(3.0));
        assert_eq!(a.statistic(&stat("p90")), Some(10.0));
        assert_eq!(a.statistic(&stat("p10")), Some(1.0));
        assert_eq!(a.statistic(&stat("p0.0")), Some(1.0));
        assert_eq!(a.statistic(&stat("p100")), Some(10.0));
        assert_eq!(a.statistic(&stat("p66.67")), Some(4.0));
    }

    #[test]
    fn aggregate_statistic_set_percentiles_follow_aws_rule() {
        // SampleCount 1: the one value is known.
        let one = Aggregate::from_statistic_set(1.0, 7.0, 7.0, 7.0);
        assert_eq!(one.statistic(&stat("p99")), Some(7.0));
        // Min == Max and Sum == Min × SampleCount: all values known.
        let flat = Aggregate::from_statistic_set(4.0, 20.0, 5.0, 5.0);
        assert_eq!(flat.statistic(&stat("p50")), Some(5.0));
        // A real spread: no percentiles, but the other statistics are there.
        let spread = Aggregate::from_statistic_set(3.0, 123.0, 12.0, 100.0);
        assert_eq!(spread.statistic(&stat("p50")), None);
        assert_eq!(spread.statistic(&stat("Average")), Some(41.0));
        // …and merging it into a raw bucket loses that bucket's percentiles.
        let mut raw = Aggregate::from_value(3.0);
        raw.merge(&spread);
        assert!(!raw.has_percentiles());
        assert_eq!(raw.sample_count(), 4.0);
        assert_eq!(raw.minimum(), 3.0);
    }

    #[test]
    fn aggregate_negative_values_have_no_percentiles() {
        let a = Aggregate::from_value(-1.0);
        assert_eq!(a.statistic(&stat("p50")), None);
        assert_eq!(a.statistic(&stat("Minimum")), Some(-1.0));
    }

    #[test]
    fn aggregate_histogram_percentile_within_relative_error() {
        // 1..=1000 each once: beyond the exact cap, so a histogram.
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let a = Aggregate::from_values(&values, &[]).unwrap();
        assert!(!a.is_exact());
        for (p, want) in [(50.0, 500.0), (90.0, 900.0), (99.0, 990.0), (99.9, 999.0)] {
            let got = a.percentile(p).unwrap();
            assert!(
                (got - want).abs() <= want * RELATIVE_ERROR,
                "p{p}: {got} vs {want}"
            );
        }
        assert_eq!(a.percentile(0.0), Some(1.0));
        assert_eq!(a.percentile(100.0), Some(1000.0));
    }

    #[test]
    fn aggregate_histogram_stays_bounded() {
        // Values spread over 2^-300..2^300: far more than MAX_BUCKETS log buckets.
        let values: Vec<f64> = (-300..300).map(|e| 2f64.powi(e)).collect();
        let mut a = Aggregate::from_values(&values, &[]).unwrap();
        for k in 0..20 {
            let more: Vec<f64> = (-300..300)
                .map(|e| 2f64.powi(e) * (1.3 + f64::from(k) * 0.01))
                .collect();
            a.merge(&Aggregate::from_values(&more, &[]).unwrap());
        }
        match &a.dist {
            Distribution::Histogram(h) => assert!(h.buckets.len() <= MAX_BUCKETS),
            other => panic!("expected a histogram, got {other:?}"),
        }
        // The top of the distribution is still accurate.
        let p99 = a.percentile(99.0).unwrap();
        assert!(p99 > 2f64.powi(280));
    }

    #[test]
    fn aggregate_zero_values_counted_in_histogram() {
        let mut values = vec![0.0; 10];
        values.extend((1..=100).map(f64::from));
        let a = Aggregate::from_values(&values, &[]).unwrap();
        assert_eq!(a.percentile(5.0), Some(0.0));
        assert_eq!(a.sample_count(), 110.0);
    }

    #[test]
    fn aggregate_serde_round_trip_is_compact() {
        let a = Aggregate::from_value(81.2);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"n":1.0,"s":81.2,"lo":81.2,"hi":81.2,"d":{"x":[[81.2,1.0]]}}"#
        );
        let back: Aggregate = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let u = Aggregate::from_statistic_set(2.0, 3.0, 1.0, 2.0);
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(json, r#"{"n":2.0,"s":3.0,"lo":1.0,"hi":2.0,"d":"u"}"#);
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        let h = Aggregate::from_values(&values, &[]).unwrap();
        let back: Aggregate = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn statistic_parse_and_display_as_aws_spells_them() {
        for s in [
            "SampleCount",
            "Average",
            "Sum",
            "Minimum",
            "Maximum",
            "p99",
            "p99.9",
            "p99.99",
            "p0",
            "p100",
            "p50.5",
        ] {
            assert_eq!(stat(s).to_string(), s);
        }
        assert_eq!(stat("p0.0").to_string(), "p0");
        assert_eq!(stat("p99.90").to_string(), "p99.9");
        assert_eq!(stat("p99.9"), Statistic::Percentile(Percentile(9990)));
        for bad in [
            "average", "p", "p100.1", "p101", "p99.999", "p-1", "p9.", "tm99", "IQM", "p1e2", "",
        ] {
            assert!(bad.parse::<Statistic>().is_err(), "{bad} parsed");
        }
    }

    fn arb_values() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![0.0..1000.0f64, (0u32..50).prop_map(f64::from)],
            1..120,
        )
    }

    proptest! {
        #[test]
        fn aggregate_merge_equals_aggregate_of_union(a in arb_values(), b in arb_values()) {
            let mut merged = Aggregate::from_values(&a, &[]).unwrap();
            merged.merge(&Aggregate::from_values(&b, &[]).unwrap());
            let union: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
            let whole = Aggregate::from_values(&union, &[]).unwrap();
            prop_assert_eq!(merged.sample_count(), whole.sample_count());
            prop_assert!((merged.sum() - whole.sum()).abs() <= 1e-9 * whole.sum().abs().max(1.0));
            prop_assert_eq!(merged.minimum(), whole.minimum());
            prop_assert_eq!(merged.maximum(), whole.maximum());
            for p in [0.0, 10.0, 50.0, 90.0, 99.0, 100.0] {
                let (m, w) = (merged.percentile(p).unwrap(), whole.percentile(p).unwrap());
                if merged.is_exact() && whole.is_exact() {
                    prop_assert_eq!(m, w);
                } else {
                    // Both within the histogram's error of the true value at that rank.
                    let mut sorted = union.clone();
                    sorted.sort_by(f64::total_cmp);
                    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                    let truth = sorted[rank - 1];
                    prop_assert!((m - truth).abs() <= truth * RELATIVE_ERROR + 1e-12, "p{} merged {} truth {}", p, m, truth);
                    prop_assert!((w - truth).abs() <= truth * RELATIVE_ERROR + 1e-12, "p{} whole {} truth {}", p, w, truth);
                }
            }
        }

        #[test]
        fn aggregate_merge_is_order_independent(a in arb_values(), b in arb_values(), c in arb_values()) {
            let agg = |v: &[f64]| Aggregate::from_values(v, &[]).unwrap();
            let mut left = agg(&a);
            left.merge(&agg(&b));
            left.merge(&agg(&c));
            let mut right = agg(&c);
            let mut bc = agg(&b);
            bc.merge(&agg(&a));
            right.merge(&bc);
            prop_assert_eq!(left.sample_count(), right.sample_count());
            prop_assert_eq!(left.minimum(), right.minimum());
            prop_assert_eq!(left.maximum(), right.maximum());
            prop_assert_eq!(left.percentile(50.0), right.percentile(50.0));
        }
    }
}
