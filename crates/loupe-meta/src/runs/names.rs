//! Generated run ids and names.

use rand::Rng;

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// 8 lowercase base-36 characters: short enough to type, 41 bits of entropy.
pub(super) fn random_id() -> String {
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| BASE36[rng.gen_range(0..BASE36.len())] as char)
        .collect()
}

const ADJECTIVES: &[&str] = &[
    "amber", "ancient", "bold", "brave", "bright", "calm", "clever", "cosmic", "crimson",
    "curious", "daring", "dashing", "eager", "electric", "fancy", "fearless", "fiery", "gentle",
    "gilded", "glad", "golden", "grand", "happy", "hidden", "humble", "icy", "jolly", "keen",
    "kind", "lively", "lucky", "lunar", "mellow", "mighty", "misty", "noble", "polar", "proud",
    "quiet", "rapid", "restless", "rustic", "silent", "silver", "solar", "stellar", "swift",
    "tidy", "vivid", "wild", "wise", "young", "zesty",
];

const NOUNS: &[&str] = &[
    "aurora", "badger", "breeze", "canyon", "cedar", "comet", "coral", "crane", "dawn", "delta",
    "dune", "eagle", "ember", "falcon", "fern", "fjord", "forest", "galaxy", "glacier", "harbor",
    "hawk", "heron", "island", "lagoon", "lynx", "maple", "meadow", "meteor", "moon", "nebula",
    "ocean", "orbit", "otter", "panda", "pine", "planet", "prairie", "quasar", "raven", "reef",
    "river", "sky", "sparrow", "spruce", "star", "summit", "thunder", "tiger", "valley", "wave",
    "willow", "wolf", "zephyr",
];

/// "adjective-noun", e.g. "brave-falcon": easier to tell apart in a list
/// than ids, and not required to be unique.
pub(super) fn two_word_name() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}",
        ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())],
        NOUNS[rng.gen_range(0..NOUNS.len())]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eight_base36_chars() {
        for _ in 0..100 {
            let id = random_id();
            assert_eq!(id.len(), 8);
            assert!(id.bytes().all(|b| BASE36.contains(&b)));
        }
    }

    #[test]
    fn names_are_two_words() {
        let name = two_word_name();
        assert_eq!(name.split('-').count(), 2, "{name}");
    }
}
