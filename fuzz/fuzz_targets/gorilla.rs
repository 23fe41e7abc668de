//! Gorilla's XOR and delta-of-delta decoders on arbitrary bytes; what decodes
//! must survive a re-encode bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_tsdb::codec::gorilla::{decode_dod, decode_xor, encode_dod, encode_xor};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode_xor(data) {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let again = decode_xor(&encode_xor(&v)).expect("re-encoded XOR stream decodes");
        assert_eq!(bits(&v), bits(&again));
    }
    if let Ok(v) = decode_dod(data) {
        let again = decode_dod(&encode_dod(&v)).expect("re-encoded delta-of-delta stream decodes");
        assert_eq!(v, again);
    }
});
