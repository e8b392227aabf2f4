//! The clock of CloudWatch and Application Auto Scaling: metric timestamps, alarm periods,
//! cooldowns and schedules read it, never the system clock directly.
//!
//! By default it *is* the system clock. For tests (and demos) a server may run it faster
//! (`--time-scale N`, documented as a test setting): from the moment the server starts,
//! `N` seconds of this clock pass per real second, so AWS's minute-long periods and
//! five-minute cooldowns take `60/N` and `300/N` real seconds while every rule — periods,
//! EvaluationPeriods, cooldowns — stays exactly AWS's. Timers of the background tasks that
//! work in these periods are scaled the same way ([`Clock::real`]).

use berth_types::Timestamp;
use std::time::Duration;

/// Now, and how fast time passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Seconds of this clock per real second (1: the system clock).
    scale: f64,
    /// Real and clock time (ms) when it started to run faster; equal at scale 1.
    origin_real: i64,
    origin: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock {
            scale: 1.0,
            origin_real: 0,
            origin: 0,
        }
    }

    /// A clock that runs `scale` times faster than the system clock from now on (`scale` ≥ 1;
    /// smaller values are taken as 1).
    pub fn scaled(scale: f64) -> Clock {
        let now = Timestamp::now().0;
        Clock {
            scale: if scale.is_finite() {
                scale.max(1.0)
            } else {
                1.0
            },
            origin_real: now,
            origin: now,
        }
    }

    /// Seconds of this clock per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// This clock's time at real time `real_ms`.
    pub fn at(&self, real_ms: i64) -> Timestamp {
        let elapsed = (real_ms - self.origin_real) as f64 * self.scale;
        Timestamp(self.origin + elapsed as i64)
    }

    /// Now, on this clock.
    pub fn now(&self) -> Timestamp {
        self.at(Timestamp::now().0)
    }

    /// How long `d` of this clock lasts in real time.
    pub fn real(&self, d: Duration) -> Duration {
        d.div_f64(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_runs_as_fast_as_its_scale() {
        let c = Clock {
            scale: 30.0,
            origin_real: 1_000,
            origin: 1_000,
        };
        assert_eq!(c.at(1_000), Timestamp(1_000));
        assert_eq!(
            c.at(3_000),
            Timestamp(61_000),
            "2 real seconds are a minute"
        );
        assert_eq!(c.real(Duration::from_secs(300)), Duration::from_secs(10));
        let system = Clock::system();
        assert_eq!(system.at(42), Timestamp(42));
        assert_eq!(Clock::scaled(0.5).scale(), 1.0);
    }
}
