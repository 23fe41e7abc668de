//! The shared case table `tests/data/units.json`, which `ui/tests/format.test.mjs`
//! checks against the web UI's formatter too.

use loupe_model::units::{Unit, value};
use serde_json::Value;

fn table() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/units.json"
    ))
    .expect("the case table is in the repository");
    serde_json::from_str(&text).expect("the case table is JSON")
}

fn unit_named(name: &str) -> Unit {
    [
        Unit::Bytes,
        Unit::BytesPerSecond,
        Unit::Percent,
        Unit::Celsius,
        Unit::Seconds,
        Unit::Milliseconds,
        Unit::Watts,
        Unit::Megahertz,
        Unit::PerSecond,
        Unit::None,
    ]
    .into_iter()
    .find(|u| u.as_str() == name)
    .unwrap_or_else(|| panic!("unknown unit {name} in the table"))
}

#[test]
fn series_names_give_the_units_of_the_shared_table() {
    let t = table();
    let cases = t["unit_of"].as_array().expect("unit_of is a list");
    assert!(cases.len() >= 20);
    for case in cases {
        let (name, unit) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        assert_eq!(Unit::of(name).as_str(), unit, "unit of {name}");
    }
}

#[test]
fn values_read_as_the_shared_table_says() {
    let t = table();
    let cases = t["format"].as_array().expect("format is a list");
    assert!(cases.len() >= 20);
    for case in cases {
        let x = case[0].as_f64().unwrap();
        let (unit, text) = (case[1].as_str().unwrap(), case[2].as_str().unwrap());
        assert_eq!(value(x, unit_named(unit)), text, "{x} in {unit}");
    }
}
