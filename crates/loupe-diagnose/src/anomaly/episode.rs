//! Alarms once per episode. A score over the alarm threshold opens an
//! episode and raises one alarm; the episode stays open (no new alarm)
//! until at least `min_points` points have passed *and* the score has
//! fallen under the release threshold. A level shift that keeps the score
//! high for a day is one alarm, not one every few rows.

/// Scores inside an open episode are reported at most this fraction of the
/// alarm threshold, so anyone thresholding the reported score (NAB's
/// optimiser, a dashboard) sees the episode's first point and not its tail.
const INSIDE_EPISODE_CAP: f64 = 0.9;

#[derive(Debug, Clone)]
pub(crate) struct EpisodeGate {
    alarm_score: f64,
    release_score: f64,
    min_points: u64,
    open: bool,
    since_alarm: u64,
}

/// What the gate made of one score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gated {
    /// The score as reported: unchanged outside episodes, capped inside.
    pub score: f64,
    /// This point opened an episode.
    pub alarm: bool,
}

impl EpisodeGate {
    pub(crate) fn new(alarm_score: f64, release_score: f64, min_points: u64) -> Self {
        EpisodeGate {
            alarm_score,
            release_score: release_score.min(alarm_score),
            min_points,
            open: false,
            since_alarm: 0,
        }
    }

    /// An episode is open.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    pub(crate) fn observe(&mut self, score: f64) -> Gated {
        let score = if score.is_nan() {
            0.0
        } else {
            score.clamp(0.0, 1.0)
        };
        if self.open {
            self.since_alarm += 1;
            if self.since_alarm >= self.min_points && score < self.release_score {
                self.open = false;
            } else {
                return Gated {
                    score: score.min(INSIDE_EPISODE_CAP * self.alarm_score),
                    alarm: false,
                };
            }
        }
        if score >= self.alarm_score {
            self.open = true;
            self.since_alarm = 0;
            return Gated { score, alarm: true };
        }
        Gated {
            score,
            alarm: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_high_stretch_is_one_alarm_and_a_later_one_is_another() {
        let mut g = EpisodeGate::new(0.5, 0.3, 10);
        let mut scores = vec![0.1; 5];
        scores.extend(vec![0.9; 40]);
        scores.extend(vec![0.1; 20]);
        scores.push(0.8);
        let out: Vec<Gated> = scores.iter().map(|s| g.observe(*s)).collect();
        let alarms: Vec<usize> = (0..out.len()).filter(|&i| out[i].alarm).collect();
        assert_eq!(alarms, vec![5, 65]);
        assert!(out[6..45].iter().all(|o| o.score < 0.5));
        assert_eq!(out[65].score, 0.8);
    }

    #[test]
    fn nan_and_out_of_range_scores_are_clamped() {
        let mut g = EpisodeGate::new(0.5, 0.3, 10);
        assert_eq!(g.observe(f64::NAN).score, 0.0);
        assert_eq!(g.observe(-3.0).score, 0.0);
        let o = g.observe(7.0);
        assert!(o.alarm && o.score == 1.0);
    }
}
