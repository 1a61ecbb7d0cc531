//! `albert experiment budget` end to end on a minute's budget: it pretrains, fine-tunes, writes
//! its CSV and PNG, and a second invocation reuses the finished pretraining and fine-tunes instead
//! of running them again (the property that makes hour-long budgets resumable).

use std::path::{Path, PathBuf};
use std::process::Command;

fn run_budget(out: &Path) -> String {
    // The command reads the committed polarity set relative to the workspace root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_albert"))
        .current_dir(root)
        .args(["experiment", "budget", "--budgets", "0,2", "--seeds", "7", "--ft-epochs", "1"])
        .args(["--ft-max-train", "24", "--threads", "2", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    text
}

#[test]
fn budget_experiment_runs_and_resumes() {
    let out: PathBuf = std::env::temp_dir().join(format!("albert-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let first = run_budget(&out);
    assert!(first.contains("| 0 (random init) |") && first.contains("| 2 |"), "{first}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].starts_with("0,0,,,,7,") && rows[1].starts_with("2,8192,"), "{csv}");
    assert!(out.join("results.png").is_file() && out.join("pretrain-2/model.safetensors").is_file());

    // Mark the recorded fine-tune: a rerun that reused it carries the mark into the table.
    let rec = out.join("finetune-2-seed7.json");
    let text = std::fs::read_to_string(&rec).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["dev_accuracy"] = serde_json::json!(0.123456);
    std::fs::write(&rec, v.to_string()).unwrap();
    let second = run_budget(&out);
    assert!(second.contains("resuming from") && second.contains("at step 2"), "{second}");
    assert!(second.contains("dev accuracy 0.1235"), "the fine-tune ran again:\n{second}");
    let _ = std::fs::remove_dir_all(&out);
}
