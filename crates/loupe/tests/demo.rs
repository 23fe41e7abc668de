//! The demo runs end to end and shows what it promises.

use std::process::Command;

#[test]
fn demo_runs_and_keeps_the_spike_and_the_resume() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["demo", "--steps", "200000", "--width", "60", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("the one-step spike at step 123457"),
        "{stdout}"
    );
    assert!(stdout.contains("is in the drawn data"), "{stdout}");
    assert!(stdout.contains('✗'), "the NaN is drawn: {stdout}");
    assert!(
        stdout.contains("train/loss{run=\"demo\"}                          200000"),
        "{stdout}"
    );
    assert!(stdout.contains("16 GPU series"), "{stdout}");
    // The data directory is a working store afterwards.
    let verify = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["store", "verify"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("every checksum matches"));
}

#[test]
fn store_commands_refuse_a_directory_that_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["store", "inspect"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Loupe data directory"));
}
