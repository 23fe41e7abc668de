//! Steps for metric lines that carry none. A Hugging Face Trainer prints
//! `{'loss': …, 'epoch': …}` without its global step; points without a step
//! would draw nothing on a chart's default step axis. The rule (in `loupe
//! run --help`, and so in `docs/cli.md`):
//!
//! 1. a line that names its step (`step 7 loss=…`, a tqdm bar's count) keeps it;
//! 2. a line without one takes the highest step seen so far in the
//!    command's output — a Trainer's training bar counts global steps, so its
//!    dicts land on the step they were logged at (the highest, so that a
//!    short evaluation bar that restarts at 0 does not pull them back);
//! 3. before any step has been seen, stepless lines are numbered in arrival
//!    order: 0, 1, 2, …

/// Fills in the steps of stepless metric lines; shared by the stdout and
/// stderr readers (the Trainer's bar is on stderr, its dicts on stdout).
#[derive(Debug, Default)]
pub struct StepFiller {
    highest: Option<i64>,
    arrivals: i64,
}

impl StepFiller {
    /// The step for a metric line whose own step is `step`.
    pub fn fill(&mut self, step: Option<i64>) -> i64 {
        match (step, self.highest) {
            (Some(s), h) => {
                self.highest = Some(h.map_or(s, |h| h.max(s)));
                s
            }
            (None, Some(h)) => h,
            (None, None) => {
                let s = self.arrivals;
                self.arrivals += 1;
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepless_lines_follow_arrival_then_the_highest_step() {
        let mut f = StepFiller::default();
        assert_eq!([f.fill(None), f.fill(None)], [0, 1]);
        assert_eq!(f.fill(Some(40)), 40);
        assert_eq!(f.fill(None), 40);
        // An evaluation bar restarting at 0 keeps its own steps and does not
        // pull the next dict back.
        assert_eq!(f.fill(Some(2)), 2);
        assert_eq!(f.fill(None), 40);
        assert_eq!(f.fill(Some(50)), 50);
        assert_eq!(f.fill(None), 50);
    }
}
