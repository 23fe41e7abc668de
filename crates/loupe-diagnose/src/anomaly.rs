//! The general streaming anomaly detector, for any series whose name gives
//! no better rule (host, GPU, serving and external metrics, `loupe detect`).
//!
//! Each point goes through one or more *predictors* whose raw errors say
//! how badly the recent past predicted it ([`seasonal`]: the previous value
//! and the same phase of past days and weeks; [`discord`]: the nearest
//! earlier shape). Every error stream has its own [`likelihood`]: the tail
//! probability of the recent errors against their long-run distribution,
//! so the score means "how unusual for this series" and one threshold fits
//! every series. The [`episode`] gate turns scores into one alarm per
//! episode. Bounded state, O(1) (seasonal) or O(history × shingle)
//! (discord) per point, no IO, no clock: callers pass the times.

mod cadence;
mod discord;
mod episode;
mod likelihood;
mod seasonal;
mod tail;

use serde::{Deserialize, Serialize};

use cadence::{Cadence, DAY_S, WEEK_S};
use discord::DiscordScorer;
use episode::EpisodeGate;
pub(crate) use likelihood::tail_from_score;
use likelihood::{Likelihood, score_from_tail};
use seasonal::SeasonalHistory;

/// Which predictors feed the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMethod {
    /// Step and seasonal errors: O(1) per point.
    Seasonal,
    /// The nearest-shape (discord) error alone.
    Discord,
    /// Seasonal and discord errors together.
    Ensemble,
}

/// Settings of the general detector. One configuration for every series:
/// the likelihood makes scores comparable, so nothing here is per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    pub method: AnomalyMethod,
    /// Score (0–1, log-scaled tail probability: 0.5 ≈ one in 1e5) that
    /// opens an episode and raises its one alarm.
    pub alarm_score: f64,
    /// An episode closes once the score is under this…
    pub release_score: f64,
    /// …and at least this many points have passed since its alarm.
    pub episode_min_points: u64,
    /// Points seen before anything is scored.
    pub warmup_points: u64,
    /// Raw errors averaged before comparing with their history.
    pub short_window: usize,
    /// Horizon (points) of a second, exponentially weighted average of
    /// the raw errors, judged against its own history (0: none): a
    /// moderate surprise that lasts is as telling as a brief large one.
    pub slow_window: usize,
    /// Horizon (points) of the long-run error distribution.
    pub long_window: usize,
    /// Raw errors are squashed to `e / (e + squash × typical e)`, so one
    /// huge error cannot dominate the long-run distribution.
    pub squash: f64,
    /// Horizon (points) of the typical error the squash compares with:
    /// short, so a volatile stretch raises it and a calm one lowers it.
    pub scale_window: usize,
    /// Horizon (points) of the recent level whose distance is a third
    /// error stream of the seasonal method (0: none): without a season to
    /// compare with, a level shift is otherwise one large step and then
    /// nothing.
    pub level_window: usize,
    /// Longest season (points) held for the seasonal baseline.
    pub max_season_points: usize,
    /// A stretch unusual enough to alarm teaches the detector nothing (its
    /// errors join neither the typical size nor the long-run
    /// distribution), so an anomaly does not make the next one look
    /// usual; one that lasts this many points becomes the new normal.
    pub relearn_after: u64,
    /// Discord: shingle length and history (points).
    pub shingle: usize,
    pub discord_history: usize,
    /// A value beyond the range seen so far by more than this fraction of
    /// that range is unusual whatever the predictors say (0 turns it off).
    pub novel_range_margin: f64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            method: AnomalyMethod::Seasonal,
            alarm_score: 0.5,
            release_score: 0.3,
            episode_min_points: 30,
            warmup_points: 150,
            short_window: 10,
            slow_window: 15,
            long_window: 3000,
            squash: 3.0,
            scale_window: 1000,
            max_season_points: 4096,
            level_window: 200,
            relearn_after: 600,
            shingle: 4,
            discord_history: 512,
            novel_range_margin: 0.02,
        }
    }
}

/// One point's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyPoint {
    /// 0–1: how unusual the point is (capped inside an open episode, so
    /// thresholding it finds episodes, not their every row).
    pub score: f64,
    /// The uncapped score.
    pub likelihood_score: f64,
    /// The point opened an episode.
    pub alarm: bool,
    /// An episode is open at this point (opened here or before).
    pub in_episode: bool,
    /// The evidence that made the point least usual (`None` before
    /// anything is scored).
    pub reason: Option<AnomalyReason>,
    /// What the series usually is here: the seasonal baseline when a day
    /// or a week is known, else its level before the current episode.
    pub expected: Option<f64>,
    /// The series' usual error, in its units: the larger of its typical
    /// step and its typical distance to past days (learnt outside
    /// unusual stretches); `None` before any.
    pub noise: Option<f64>,
    /// The detector has seen a whole cycle of the longest season that
    /// fits (a week of a five-minute series, a day of an hourly one), or
    /// its warm-up when none fits: before, a day unlike the previous ones
    /// may just be the first weekend.
    pub settled: bool,
}

/// The evidence behind a score: the error stream with the smallest tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyReason {
    /// The step from the previous value, against the usual steps.
    Step,
    /// The distance to the same time of the previous days or weeks.
    Season,
    /// The distance to the series' recent level.
    Level,
    /// The distance to the nearest earlier shape (discord).
    Shape,
    /// The value is beyond the range seen so far.
    NewRange,
}

impl AnomalyReason {
    /// The reason in words, for explanations.
    pub fn describe(self) -> &'static str {
        match self {
            AnomalyReason::Step => "a change unlike its usual steps",
            AnomalyReason::Season => "unlike the same time of the previous days or weeks",
            AnomalyReason::Level => "away from its recent level",
            AnomalyReason::Shape => "a shape unlike any in its recent past",
            AnomalyReason::NewRange => "beyond every value it had before",
        }
    }
}

/// One raw-error stream: its typical size and its likelihood.
#[derive(Debug, Clone)]
struct ErrorChannel {
    typical: f64,
    seen: u64,
    alpha: f64,
    squash: f64,
    likelihood: Likelihood,
    /// Tails under this are not learnt from (the alarm's tail)…
    quiet_tail: f64,
    /// …unless the stretch has lasted this many points.
    relearn_after: u64,
    unusual_run: u64,
    /// The last error was learnt from.
    learnt: bool,
}

impl ErrorChannel {
    fn new(cfg: &AnomalyConfig) -> Self {
        ErrorChannel {
            typical: 0.0,
            seen: 0,
            alpha: 1.0 / cfg.scale_window.max(2) as f64,
            squash: cfg.squash.max(1e-6),
            likelihood: Likelihood::new(
                cfg.short_window,
                cfg.slow_window,
                cfg.long_window,
                cfg.warmup_points,
            ),
            quiet_tail: tail_from_score(cfg.alarm_score),
            relearn_after: cfg.relearn_after,
            unusual_run: 0,
            learnt: false,
        }
    }

    /// Tail probability of this error (and the recent ones).
    fn update(&mut self, e: f64) -> f64 {
        if !e.is_finite() {
            return 0.5;
        }
        let scale = self.squash * self.typical;
        let u = if e + scale > 0.0 {
            e / (e + scale)
        } else {
            0.0
        };
        let tail = self.likelihood.observe(u);
        self.learnt = false;
        if tail < self.quiet_tail {
            self.unusual_run += 1;
            if self.unusual_run <= self.relearn_after {
                return tail;
            }
        } else {
            self.unusual_run = 0;
        }
        self.learnt = true;
        self.seen += 1;
        self.typical += self.alpha.max(1.0 / self.seen as f64) * (e - self.typical);
        self.likelihood.learn();
        tail
    }
}

/// The general detector of one series.
#[derive(Debug, Clone)]
pub struct AnomalyDetector {
    cfg: AnomalyConfig,
    cadence: Cadence,
    history: Option<SeasonalHistory>,
    discord: Option<DiscordScorer>,
    step: ErrorChannel,
    season: ErrorChannel,
    shape: ErrorChannel,
    level_error: ErrorChannel,
    /// The recent level the level stream compares with, learnt only from
    /// what that stream learns from.
    recent_level: Option<f64>,
    gate: EpisodeGate,
    range: Option<(f64, f64)>,
    points: u64,
    /// The series' level, learnt outside episodes only.
    level: Option<f64>,
}

/// Weight of a new value in the level (outside episodes): about the last
/// ten values.
const LEVEL_ALPHA: f64 = 0.1;

/// Tail probability given to a value outside the range seen so far.
const NOVEL_RANGE_TAIL: f64 = 1e-8;

impl AnomalyDetector {
    pub fn new(cfg: &AnomalyConfig) -> Self {
        let seasonal = matches!(
            cfg.method,
            AnomalyMethod::Seasonal | AnomalyMethod::Ensemble
        );
        let discord = matches!(cfg.method, AnomalyMethod::Discord | AnomalyMethod::Ensemble);
        AnomalyDetector {
            cadence: Cadence::new(),
            history: seasonal.then(|| SeasonalHistory::new(cfg.max_season_points + 1)),
            discord: discord.then(|| DiscordScorer::new(cfg.shingle, cfg.discord_history)),
            step: ErrorChannel::new(cfg),
            season: ErrorChannel::new(cfg),
            shape: ErrorChannel::new(cfg),
            level_error: ErrorChannel::new(cfg),
            recent_level: None,
            gate: EpisodeGate::new(cfg.alarm_score, cfg.release_score, cfg.episode_min_points),
            range: None,
            points: 0,
            level: None,
            cfg: cfg.clone(),
        }
    }

    /// Bytes this detector holds, itself and on the heap: about 2 KB, plus
    /// the seasonal history once a day or a week fits (at most
    /// `8 × (max_season_points + 2)` bytes) and the discord's ring
    /// (`8 × (discord_history + shingle)`) for the methods that use it.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.history.as_ref().map_or(0, SeasonalHistory::heap_bytes)
            + self.discord.as_ref().map_or(0, DiscordScorer::heap_bytes)
    }

    /// Scores value `x` at time `t` (seconds; only the gaps matter). A
    /// non-finite value is not learnt from and scores 0: it is a finding
    /// of its own (`NonFinite`), not a statistical surprise.
    pub fn observe(&mut self, t: f64, x: f64) -> AnomalyPoint {
        self.cadence.observe(t);
        if !x.is_finite() {
            return AnomalyPoint {
                score: 0.0,
                likelihood_score: 0.0,
                alarm: false,
                in_episode: self.gate.is_open(),
                reason: None,
                expected: self.level,
                noise: self.noise(),
                settled: self.settled(),
            };
        }
        // The smallest tail over the error streams, corrected for looking
        // at several (Bonferroni), is the point's tail probability.
        let mut tail: f64 = 1.0;
        let mut streams = 0.0;
        let mut reason = None;
        let mut seasonal_expected = None;
        let mut least = |tail: &mut f64, t: f64, why: AnomalyReason| {
            if t < *tail {
                *tail = t;
                reason = Some(why);
            } else if reason.is_none() {
                reason = Some(why);
            }
        };
        if let Some(h) = &mut self.history {
            let max = self.cfg.max_season_points;
            let mut seasons = [0usize; 2];
            let mut n = 0;
            for s in [DAY_S, WEEK_S] {
                if let Some(p) = self.cadence.season_points(s, max) {
                    seasons[n] = p;
                    n += 1;
                }
            }
            let e = h.observe(x, &seasons[..n]);
            if let Some(step) = e.step {
                least(&mut tail, self.step.update(step), AnomalyReason::Step);
                streams += 1.0;
            }
            if let Some(season) = e.season {
                least(&mut tail, self.season.update(season), AnomalyReason::Season);
                streams += 1.0;
            }
            seasonal_expected = e.expected;
            if self.cfg.level_window > 0 {
                match self.recent_level {
                    Some(l) => {
                        let t = self.level_error.update((x - l).abs());
                        least(&mut tail, t, AnomalyReason::Level);
                        streams += 1.0;
                        if self.level_error.learnt {
                            let a = 1.0 / self.cfg.level_window.max(1) as f64;
                            self.recent_level = Some(l + a * (x - l));
                        }
                    }
                    None => self.recent_level = Some(x),
                }
            }
        }
        if let Some(d) = &mut self.discord
            && let Some(dist) = d.observe(x)
        {
            least(&mut tail, self.shape.update(dist), AnomalyReason::Shape);
            streams += 1.0;
        }
        if self.novel_range(x) {
            least(&mut tail, NOVEL_RANGE_TAIL, AnomalyReason::NewRange);
        }
        let score = score_from_tail((tail * f64::max(streams, 1.0)).min(1.0));
        let gated = self.gate.observe(score);
        let expected = seasonal_expected.or(self.level);
        let in_episode = self.gate.is_open();
        if !in_episode {
            self.level = Some(match self.level {
                Some(l) => l + LEVEL_ALPHA * (x - l),
                None => x,
            });
        }
        AnomalyPoint {
            score: gated.score,
            likelihood_score: score,
            alarm: gated.alarm,
            in_episode,
            reason,
            expected,
            noise: self.noise(),
            settled: self.settled(),
        }
    }

    /// See [`AnomalyPoint::settled`].
    fn settled(&self) -> bool {
        let max = self.cfg.max_season_points;
        let longest = [DAY_S, WEEK_S]
            .into_iter()
            .filter_map(|s| self.cadence.season_points(s, max))
            .max()
            .unwrap_or(0);
        self.points > self.cfg.warmup_points.max(longest as u64)
    }

    /// The larger typical error of the seasonal streams.
    fn noise(&self) -> Option<f64> {
        [&self.step, &self.season]
            .into_iter()
            .filter(|c| c.seen > 0)
            .map(|c| c.typical)
            .reduce(f64::max)
    }

    /// Whether finite `x` leaves the range seen so far by the margin
    /// (after warm-up, and after a day when the series has days), then
    /// widens the range to hold it.
    fn novel_range(&mut self, x: f64) -> bool {
        self.points += 1;
        let Some((lo, hi)) = self.range else {
            self.range = Some((x, x));
            return false;
        };
        let margin = self.cfg.novel_range_margin * (hi - lo);
        // A daily series has not shown its range before a whole day.
        let day = self
            .cadence
            .season_points(DAY_S, self.cfg.max_season_points)
            .unwrap_or(0) as u64;
        let novel = self.cfg.novel_range_margin > 0.0
            && self.points > self.cfg.warmup_points.max(day)
            && (x > hi + margin || x < lo - margin);
        self.range = Some((lo.min(x), hi.max(x)));
        novel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [AnomalyMethod; 3] = [
        AnomalyMethod::Seasonal,
        AnomalyMethod::Discord,
        AnomalyMethod::Ensemble,
    ];

    /// Five-minute samples of a daily wave with deterministic noise.
    fn daily_wave(n: usize) -> (Vec<f64>, Vec<f64>) {
        let times = (0..n).map(|i| 1.7e9 + 300.0 * i as f64).collect();
        let values = (0..n)
            .map(|i| {
                let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
                50.0 + 20.0 * phase.sin() + ((i * 7919) % 23) as f64 / 23.0
            })
            .collect();
        (times, values)
    }

    fn alarms(method: AnomalyMethod, times: &[f64], values: &[f64]) -> Vec<usize> {
        let cfg = AnomalyConfig {
            method,
            ..AnomalyConfig::default()
        };
        let mut d = AnomalyDetector::new(&cfg);
        let mut out = Vec::new();
        for (i, (&t, &x)) in times.iter().zip(values).enumerate() {
            let p = d.observe(t, x);
            assert!((0.0..=1.0).contains(&p.score), "{method:?} row {i}: {p:?}");
            assert!(p.score <= p.likelihood_score + 1e-12);
            if p.alarm {
                out.push(i);
            }
        }
        out
    }

    #[test]
    fn a_periodic_series_without_anomaly_raises_no_alarm() {
        let (t, v) = daily_wave(4000);
        for m in METHODS {
            assert_eq!(alarms(m, &t, &v), Vec::<usize>::new(), "{m:?}");
        }
    }

    #[test]
    fn a_spike_in_a_periodic_series_is_one_alarm() {
        let (t, mut v) = daily_wave(3000);
        v[2000] += 40.0;
        for m in METHODS {
            assert_eq!(alarms(m, &t, &v), vec![2000], "{m:?}");
        }
    }

    #[test]
    fn a_level_shift_in_a_periodic_series_is_one_alarm() {
        let (t, mut v) = daily_wave(3500);
        for x in &mut v[2000..] {
            *x += 30.0;
        }
        for m in METHODS {
            let a = alarms(m, &t, &v);
            assert_eq!(a.len(), 1, "{m:?}: {a:?}");
            assert!((2000..2010).contains(&a[0]), "{m:?}: {a:?}");
        }
    }

    #[test]
    fn odd_input_never_panics_nor_alarms_by_itself() {
        for m in METHODS {
            let cfg = AnomalyConfig {
                method: m,
                ..AnomalyConfig::default()
            };
            // Constant, with non-finite values and times mixed in.
            let mut d = AnomalyDetector::new(&cfg);
            for i in 0..2000 {
                let x = match i % 97 {
                    3 => f64::NAN,
                    5 => f64::INFINITY,
                    7 => f64::NEG_INFINITY,
                    _ => 4.0,
                };
                let t = if i % 89 == 0 { f64::NAN } else { i as f64 };
                let p = d.observe(t, x);
                // "As usual" is a tail of one half or more: a score near 0.
                assert!(!p.alarm && p.score < 0.05, "{m:?} row {i}: {p:?}");
            }
            // Extreme magnitudes stay in range.
            for x in [f64::MAX, -f64::MAX, 1e-300, 0.0, f64::MAX] {
                let p = d.observe(0.0, x);
                assert!((0.0..=1.0).contains(&p.score), "{m:?}: {p:?}");
            }
            // No points at all: nothing to do, nothing to break.
            let _ = AnomalyDetector::new(&cfg);
        }
    }

    #[test]
    fn state_stays_bounded_however_long_the_series() {
        let cfg = AnomalyConfig {
            method: AnomalyMethod::Ensemble,
            max_season_points: 300,
            discord_history: 64,
            ..AnomalyConfig::default()
        };
        let mut d = AnomalyDetector::new(&cfg);
        let (t, v) = daily_wave(20_000);
        let fixed = d.memory_bytes();
        assert!(fixed < 3 * 1024, "{fixed}");
        for (&t, &x) in t.iter().zip(&v) {
            d.observe(t, x);
        }
        // The 288-point day fits: its history, then nothing more.
        let bound = fixed + 8 * (cfg.max_season_points + 2);
        assert!(d.memory_bytes() <= bound, "{} > {bound}", d.memory_bytes());
        assert!(d.memory_bytes() > fixed);
    }

    #[test]
    fn a_fast_series_holds_no_seasonal_history() {
        // One point a second: a day is 86 400 points, more than any
        // season held, so only the previous value is kept.
        let mut d = AnomalyDetector::new(&AnomalyConfig::default());
        let fixed = d.memory_bytes();
        for i in 0..20_000 {
            let x = 40.0 + ((i * 7919) % 23) as f64 / 23.0;
            d.observe(i as f64, x);
        }
        assert_eq!(d.memory_bytes(), fixed);
        assert!(fixed < 3 * 1024, "{fixed}");
    }
}
