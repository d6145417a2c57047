//! A study knows the definition each trial ran under: `study run` of an
//! edited file goes on where the change leaves earlier trials alone, stops
//! with every change named where it does not, and records what it accepted.

use std::path::Path;
use std::process::{Command, Output};

const STUDY: &str = env!("CARGO_BIN_EXE_study");

const STUDY_FILE: &str = r#"
name: edited
seed: 4
objective:
  command: >-
    awk 'BEGIN { x = {x}; printf "{\"objective\": %g}\n", (x - 0.5) ^ 2 }'
phases:
  - name: search
    sampler: {type: tpe, n_startup_trials: 2}
    n_trials: 4
    space:
      x: {type: float, low: 0.0, high: 1.0}
resources: {devices: cpu, trials_per_device: 2}
"#;

fn study(dir: &Path, args: &[&str]) -> Output {
    Command::new(STUDY).args(args).current_dir(dir).output().expect("the study binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = study(dir, args);
    assert!(output.status.success(), "study {args:?} failed:\n{}", text(&output));
    text(&output)
}

fn count(dir: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("results/edited/study.db")).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn edits_that_leave_earlier_trials_alone_continue_and_others_stop_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, STUDY_FILE).unwrap();
    ok(dir.path(), &["run", "s.yaml"]);
    let status = ok(dir.path(), &["status"]);
    assert!(status.contains("definition: as first run"), "{status}");

    // More trials and another retry count leave the first four as they are.
    let more = STUDY_FILE
        .replace("n_trials: 4", "n_trials: 6")
        .replace("trials_per_device: 2}", "trials_per_device: 2, retries: 1}");
    std::fs::write(&file, &more).unwrap();
    let run = ok(dir.path(), &["run", "s.yaml"]);
    assert!(run.contains("phases[0].n_trials: 4 → 6"), "{run}");
    assert!(run.contains("resources.retries: 0 → 1"), "{run}");
    assert_eq!(count(dir.path(), "SELECT count(*) FROM trials"), 6);

    // A wider space and another sampler change what the trials mean: refused,
    // every change named, nothing written.
    let edited = more
        .replace("high: 1.0", "high: 2.0")
        .replace("n_startup_trials: 2}", "n_startup_trials: 2, multivariate: true}")
        .replace("n_trials: 6", "n_trials: 8");
    std::fs::write(&file, &edited).unwrap();
    let refused = study(dir.path(), &["run", "s.yaml"]);
    let message = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{message}");
    for line in [
        "phases[0].space.x.high: 1.0 → 2.0",
        "phases[0].sampler.multivariate: (not set) → true",
        "phases[0].n_trials: 6 → 8",
    ] {
        assert!(message.contains(line), "{line} missing from:\n{message}");
    }
    assert!(
        message.contains("s.yaml") && message.contains("--accept-changes") && message.contains("new `name`"),
        "{message}"
    );
    assert_eq!(count(dir.path(), "SELECT count(*) FROM trials"), 6);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM definitions"), 2);

    // Accepted, the change is recorded with the trials it made.
    let run = ok(dir.path(), &["run", "s.yaml", "--accept-changes"]);
    assert!(run.contains("accepted and recorded"), "{run}");
    assert_eq!(count(dir.path(), "SELECT count(*) FROM trials"), 8);
    assert_eq!(
        count(dir.path(), "SELECT count(*) FROM definitions WHERE accepted = 1 AND first_trial = 6"),
        1
    );
    let status = ok(dir.path(), &["status"]);
    assert!(status.contains("definitions: 3 (the study file changed 2 time(s))"), "{status}");
    assert!(status.contains("trials 0–3"), "{status}");
    assert!(
        status.contains("trials 6–") && status.contains("accepted: phases[0].space.x.high: 1.0 → 2.0"),
        "{status}"
    );

    // The same file again: nothing changed, nothing recorded.
    ok(dir.path(), &["run", "s.yaml"]);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM definitions"), 3);

    ok(dir.path(), &["report", "--out", "rep", "--no-figures"]);
    let report = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    assert!(report.contains("Study definitions"), "{report}");
    assert!(report.contains("| 3 |") && report.contains("accepted: phases[0].space.x.high"), "{report}");
    let csv = std::fs::read_to_string(dir.path().join("rep/tables/definitions.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "a header and three revisions:\n{csv}");
}

#[test]
fn a_study_from_before_definitions_were_kept_is_judged_against_its_stored_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, STUDY_FILE).unwrap();
    ok(dir.path(), &["run", "s.yaml"]);
    // What an earlier version wrote: schema 1 (no definitions, no waiting
    // reasons), the file's snapshot.
    {
        let conn = rusqlite::Connection::open(dir.path().join("results/edited/study.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE definitions; ALTER TABLE trials DROP COLUMN waiting_for;
             ALTER TABLE trials DROP COLUMN constraints; ALTER TABLE trials DROP COLUMN objective_values;
             ALTER TABLE studies DROP COLUMN objectives; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    std::fs::write(&file, STUDY_FILE.replace("low: 0.0", "low: -1.0")).unwrap();
    let refused = study(dir.path(), &["run", "s.yaml"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("phases[0].space.x.low: 0.0 → -1.0"), "{}", text(&refused));
    // Upgraded, with the stored file as revision 1 for the four trials.
    assert_eq!(count(dir.path(), "SELECT count(*) FROM definitions"), 0, "refused before writing");
    std::fs::write(&file, STUDY_FILE).unwrap();
    ok(dir.path(), &["run", "s.yaml"]);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM definitions WHERE first_trial = 0"), 1);
}
