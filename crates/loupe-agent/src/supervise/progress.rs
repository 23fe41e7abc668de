//! Progress bars in a child's output. tqdm (and the Hugging Face Trainer,
//! Keras, pip… through it) redraws one line with `\r` many times a second:
//! only the bar's last state becomes a log record ([`RedrawHold`]), and
//! bars stay out of a failure's stderr tail ([`is_progress_bar`]), where
//! they would push out the lines that explain the failure. The Python SDK's
//! console capture keeps the same rule (`python/loupe/_console.py`).

/// Whether `line` is a tqdm-style progress bar:
/// `train:  45%|████▌     | 45/100 [00:01<00:01, 40.2it/s]`, or without a
/// total, `45it [00:01, 40.2it/s]`.
pub fn is_progress_bar(line: &str) -> bool {
    has_percent_bar(line) || has_timing_bracket(line)
}

/// `45%|` — a percentage followed by the bar's opening `|`.
fn has_percent_bar(line: &str) -> bool {
    line.match_indices("%|").any(|(i, _)| {
        line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// `[00:01<00:01, 40.2it/s]` or `[00:01, 40.2it/s]` or `[1:02:03<?, ?it/s]`:
/// elapsed time, optionally `<` remaining, then a rate per second or
/// seconds per unit.
fn has_timing_bracket(line: &str) -> bool {
    line.match_indices('[').any(|(i, _)| {
        let rest = &line[i + 1..];
        let Some(end) = rest.find(']') else {
            return false;
        };
        let inside = &rest[..end];
        let (elapsed, after) = inside.split_at(inside.find(['<', ',']).unwrap_or(inside.len()));
        is_clock(elapsed) && after.contains(", ") && (after.contains("/s") || after.contains("s/"))
    })
}

/// `00:01`, `1:02:03`: digits, then one or two `:NN` groups.
fn is_clock(s: &str) -> bool {
    let mut parts = s.split(':');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let rest: Vec<&str> = parts.collect();
    first_ok
        && (1..=2).contains(&rest.len())
        && rest
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Holds the latest state of a line being redrawn with `\r`, so that only
/// its last state is logged: a newer redraw replaces it, and it is let go
/// when the redraw ends (its `\n`, a new line, the end of the stream).
#[derive(Debug, Default)]
pub struct RedrawHold {
    pending: Option<String>,
}

impl RedrawHold {
    /// A new state of the line; the one it replaces is dropped.
    pub fn replace(&mut self, text: &str) {
        let s = self.pending.get_or_insert_with(String::new);
        s.clear();
        s.push_str(text);
    }

    /// The held state, if any, to log now (the redraw is over).
    pub fn take(&mut self) -> Option<String> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tqdm_bars_are_recognised() {
        for bar in [
            "train:  45%|████▌     | 45/100 [00:01<00:01, 40.2it/s]",
            "  0%|          | 0/3 [00:00<?, ?it/s]",
            "100%|##########| 3/3 [00:00<00:00, 2999.50it/s]",
            "45it [00:01, 40.2it/s]",
            "Epoch 1:  50%|█████     | 5/10 [00:02<00:02,  2.10it/s, loss=0.5]",
            "  3%|▎         | 10/300 [1:02:03<10:00:00, 12.5s/it]",
        ] {
            assert!(is_progress_bar(bar), "{bar}");
        }
        for line in [
            "step 30 loss 4.81",
            "ValueError: loss is nan",
            "accuracy 95%",
            "[rank0]: NCCL error [12:34]",
            "  File \"train.py\", line 9, in <module>",
            "lr|0.1|",
        ] {
            assert!(!is_progress_bar(line), "{line}");
        }
    }

    #[test]
    fn a_hold_keeps_only_the_newest_state() {
        let mut h = RedrawHold::default();
        assert_eq!(h.take(), None);
        h.replace(" 10%");
        h.replace(" 20%");
        assert_eq!(h.take().as_deref(), Some(" 20%"));
        assert_eq!(h.take(), None);
    }
}
