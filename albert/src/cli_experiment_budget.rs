//! `albert experiment budget`: at which pretraining budget does pretraining start to pay off
//! downstream? The default pretraining (`albert pretrain`: tiny preset, 32 x 128 tokens a step,
//! AdamW 1e-3, 6 % warmup, linear decay) is run for each `--budgets` step count (0 = no
//! pretraining: random initialisation), and each result is fine-tuned on the polarity set with
//! every `--seeds` seed. The table gives the mean and spread of dev accuracy per budget and its
//! gain over random initialisation with the gain's standard error.
//!
//! Long budgets take an hour or more on 2 cores, so the experiment resumes: a pretraining folder
//! `pretrain-<steps>/` continues from its newest checkpoint (the trainer checks that the settings
//! match), and a fine-tune whose `finetune-<steps>-seed<s>.json` records the same settings is not
//! run again. A folder written by `albert pretrain --steps N --out DIR/pretrain-N` with the other
//! options at their defaults is the same run, and is reused.

use crate::cli_finetune::{DEFAULT_DEV, DEFAULT_TRAIN};
use crate::cli_pretrain::resolve_tokenizer;
use crate::config::AlbertConfig;
use crate::data::CorpusSource;
use crate::finetune::{self, bow, Settings, Start};
use crate::train::{self, ObjectiveKind, OptimizerKind, RunOptions, TrainSettings};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone)]
pub struct BudgetArgs {
    /// Pretraining steps of each budget (0: random initialisation, no pretraining).
    #[arg(long, value_delimiter = ',', default_value = "0,1000,3000,6000,12000")]
    pub budgets: Vec<usize>,
    /// Fine-tuning seeds (classifier initialisation, dropout and shuffling; a random-init model's
    /// encoder too).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Pretraining seed (the same for every budget, as `albert pretrain`'s default).
    #[arg(long, default_value_t = 12345)]
    pub pretrain_seed: u64,
    /// Pretraining corpus (as `albert pretrain --corpus`; default: the embedded corpus). The
    /// tokenizer stays the shipped one, so only the text changes.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Pretraining objective besides MLM (`none` for a corpus of unrelated single sentences).
    #[arg(long, value_enum, default_value_t = ObjectiveKind::Sop)]
    pub objective: ObjectiveKind,
    #[arg(long, default_value_t = 3)]
    pub ft_epochs: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub ft_lr: f64,
    /// Fine-tune on the first N polarity training sentences (default: all 11,357).
    #[arg(long)]
    pub ft_max_train: Option<usize>,
    #[arg(long, default_value = "runs/experiment-budget")]
    pub out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// One fine-tuning run: what determines it and what it scored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct FtRecord {
    pretrain_steps: usize,
    seed: u64,
    epochs: usize,
    lr: f64,
    batch_size: usize,
    max_seq_len: usize,
    max_train: Option<usize>,
    dev_accuracy: f64,
    dev_f1: f64,
    dev_mcc: f64,
    best_epoch: usize,
    seconds: f64,
}

impl FtRecord {
    /// Same run (the measured fields aside)?
    fn same_settings(&self, o: &FtRecord) -> bool {
        (self.pretrain_steps, self.seed, self.epochs, self.batch_size, self.max_seq_len, self.max_train)
            == (o.pretrain_steps, o.seed, o.epochs, o.batch_size, o.max_seq_len, o.max_train)
            && self.lr == o.lr
    }
}

/// One budget: the pretraining's held-out scores and its fine-tunes.
struct BudgetResult {
    steps: usize,
    mlm_acc: Option<f64>,
    mlm_baseline: Option<f64>,
    sop_acc: Option<f64>,
    runs: Vec<FtRecord>,
}

/// Mean and sample standard deviation.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n.max(1.0);
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// The pretraining settings of `albert pretrain --steps <steps> [--corpus C --objective O]` with
/// every other option at its default (kept in step with `cli_pretrain`; the trainer refuses to
/// resume a folder whose recorded settings differ).
fn pretrain_settings(steps: usize, seed: u64, corpus: &CorpusSource, objective: ObjectiveKind) -> TrainSettings {
    TrainSettings {
        objective,
        optimizer: OptimizerKind::Adamw,
        lr: 1e-3,
        warmup: steps * 6 / 100,
        steps,
        batch_size: 32,
        seq_len: 128,
        accumulate: 1,
        weight_decay: 0.01,
        clip_norm: 1.0,
        seed,
        max_predictions: 20,
        eval_batches: 40,
        corpus: corpus.describe(),
    }
}

/// Pretrains (or finishes, or reuses) `dir` for `steps` steps; returns its last held-out scores
/// (MLM accuracy, its most-frequent-token baseline, sentence-order accuracy if trained).
fn pretrain(
    steps: usize,
    a: &BudgetArgs,
    corpus: &CorpusSource,
    dir: &Path,
) -> Result<(f64, f64, Option<f64>), String> {
    let tok = Arc::new(resolve_tokenizer(None, dir)?);
    let mut config = AlbertConfig::preset("tiny")?;
    config.vocab_size = tok.vocab_size();
    let settings = pretrain_settings(steps, a.pretrain_seed, corpus, a.objective);
    config.max_position_embeddings = config.max_position_embeddings.max(settings.seq_len);
    let resume = train::latest_checkpoint(dir).map(|_| dir.to_path_buf());
    // Log lines (a long budget is worth watching), no progress bar.
    let run =
        RunOptions { resume, checkpoint_every: 500, log_every: 500, quiet: false, ..RunOptions::silent(dir, 1000) };
    train::pretrain(&settings, &run, &config, tok, corpus.clone())?;
    let rows = train::metrics::read(&dir.join("metrics.csv"), steps);
    let last = rows
        .iter()
        .rev()
        .find(|r| r.kind == "eval" && r.step == steps)
        .ok_or_else(|| format!("{}: no evaluation at step {steps} in metrics.csv", dir.display()))?;
    let order = (a.objective != ObjectiveKind::None).then_some(last.order_acc);
    Ok((last.mlm_acc, last.mlm_baseline_acc, order))
}

/// Fine-tunes from `start` with `want`'s settings, or returns the record already on disk.
fn finetune_once(want: FtRecord, start: Start, max_pos: usize, path: &Path) -> Result<FtRecord, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        match serde_json::from_str::<FtRecord>(&text) {
            Ok(r) if r.same_settings(&want) => return Ok(r),
            Ok(_) => println!("  {}: other settings, running again", path.display()),
            Err(e) => println!("  {}: unreadable ({e}), running again", path.display()),
        }
    }
    let s = Settings {
        start,
        train: PathBuf::from(DEFAULT_TRAIN),
        dev: PathBuf::from(DEFAULT_DEV),
        epochs: want.epochs,
        lr: want.lr,
        batch_size: want.batch_size,
        max_seq_len: want.max_seq_len.min(max_pos),
        seed: want.seed,
        warmup: 0.1,
        weight_decay: 0.01,
        max_train: want.max_train,
        out: None,
        device: engine::Device::Cpu,
        progress_bar: false,
        quiet: true,
    };
    let o = finetune::finetune(&s, &|_| {})?;
    let r = FtRecord {
        dev_accuracy: o.best.accuracy,
        dev_f1: o.best.f1,
        dev_mcc: o.best.mcc,
        best_epoch: o.best_epoch,
        seconds: o.seconds,
        ..want
    };
    let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
    crate::checkpoint::write_text_atomically(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(r)
}

/// The bag-of-words baseline and the majority class on the same split (seconds to compute).
fn baselines(max_train: Option<usize>) -> Result<(f64, f64), String> {
    let r = bow::train_on_split(Path::new(DEFAULT_TRAIN), Path::new(DEFAULT_DEV), max_train, 3, 42)?;
    Ok((r.dev.accuracy, r.majority_accuracy))
}

pub fn run(a: &BudgetArgs) -> Result<(), String> {
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads: {e}"))?;
    }
    if a.budgets.is_empty() || a.seeds.is_empty() {
        return Err("--budgets and --seeds need at least one value each".into());
    }
    let mut budgets = a.budgets.clone();
    budgets.sort_unstable();
    budgets.dedup();
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let corpus = a.corpus.as_ref().map_or(CorpusSource::Embedded, CorpusSource::path);
    println!(
        "experiment budget: pretraining budgets {budgets:?} steps of 32 x 128 tokens (seed {}, {}, objective {:?}), \
         each fine-tuned on polarity with seeds {:?} ({} epochs, lr {}); results in {}",
        a.pretrain_seed,
        corpus.describe(),
        a.objective,
        a.seeds,
        a.ft_epochs,
        a.ft_lr,
        a.out.display()
    );
    let max_pos = AlbertConfig::preset("tiny")?.max_position_embeddings.max(128);
    let mut results = Vec::new();
    for &steps in &budgets {
        let (start, scores) = if steps == 0 {
            (Start::Random, None)
        } else {
            let dir = a.out.join(format!("pretrain-{steps}"));
            println!("pretraining {steps} steps in {}", dir.display());
            let s = pretrain(steps, a, &corpus, &dir)?;
            (Start::Pretrained(dir), Some(s))
        };
        let mut runs = Vec::new();
        for &seed in &a.seeds {
            let want = FtRecord {
                pretrain_steps: steps,
                seed,
                epochs: a.ft_epochs,
                lr: a.ft_lr,
                batch_size: 32,
                max_seq_len: 128,
                max_train: a.ft_max_train,
                dev_accuracy: 0.0,
                dev_f1: 0.0,
                dev_mcc: 0.0,
                best_epoch: 0,
                seconds: 0.0,
            };
            let path = a.out.join(format!("finetune-{steps}-seed{seed}.json"));
            let r = finetune_once(want, start.clone(), max_pos, &path)?;
            println!(
                "  budget {steps}, seed {seed}: dev accuracy {:.4} (F1 {:.4}, MCC {:.4}), epoch {}, {:.0} s",
                r.dev_accuracy, r.dev_f1, r.dev_mcc, r.best_epoch, r.seconds
            );
            runs.push(r);
        }
        results.push(BudgetResult {
            steps,
            mlm_acc: scores.map(|s| s.0),
            mlm_baseline: scores.map(|s| s.1),
            sop_acc: scores.and_then(|s| s.2),
            runs,
        });
    }
    let (bow_acc, majority_acc) = baselines(a.ft_max_train)?;
    print_table(&results, bow_acc, majority_acc);
    write_csv(&a.out.join("results.csv"), &results)?;
    plot(&a.out.join("results.png"), &results, bow_acc, majority_acc)?;
    println!("wrote {} and {}", a.out.join("results.csv").display(), a.out.join("results.png").display());
    Ok(())
}

fn accuracies(r: &BudgetResult) -> Vec<f64> {
    r.runs.iter().map(|x| x.dev_accuracy).collect()
}

fn print_table(rs: &[BudgetResult], bow_acc: f64, majority_acc: f64) {
    let random = rs.iter().find(|r| r.steps == 0).map(accuracies);
    println!(
        "\n| pretraining steps | tokens | held-out MLM acc (baseline) | SOP acc | polarity dev acc, mean ± sd | per seed | gain over random init ± se |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rs {
        let acc = accuracies(r);
        let (m, sd) = mean_sd(&acc);
        let gain = match (&random, r.steps) {
            (Some(rand), s) if s > 0 => {
                let (rm, rsd) = mean_sd(rand);
                let se = (sd * sd / acc.len() as f64 + rsd * rsd / rand.len() as f64).sqrt();
                format!("{:+.4} ± {se:.4}", m - rm)
            }
            _ => "-".into(),
        };
        let mlm = match (r.mlm_acc, r.mlm_baseline) {
            (Some(x), Some(b)) => format!("{x:.4} ({b:.4})"),
            _ => "-".into(),
        };
        let per_seed: Vec<String> = acc.iter().map(|x| format!("{x:.4}")).collect();
        println!(
            "| {} | {:.1} M | {mlm} | {} | {m:.4} ± {sd:.4} | {} | {gain} |",
            if r.steps == 0 { "0 (random init)".to_string() } else { r.steps.to_string() },
            (r.steps * 32 * 128) as f64 / 1e6,
            r.sop_acc.map_or("-".into(), |x| format!("{x:.4}")),
            per_seed.join(", ")
        );
    }
    println!("(baselines on the same split: bag-of-words logistic regression {bow_acc:.4}, majority class {majority_acc:.4})");
}

fn write_csv(path: &Path, rs: &[BudgetResult]) -> Result<(), String> {
    let o = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.6}"));
    let mut text = String::from(
        "pretrain_steps,pretrain_tokens,mlm_acc,mlm_baseline_acc,sop_acc,seed,dev_acc,dev_f1,dev_mcc,best_epoch,ft_seconds\n",
    );
    for r in rs {
        for x in &r.runs {
            text += &format!(
                "{},{},{},{},{},{},{:.6},{:.6},{:.6},{},{:.1}\n",
                r.steps,
                r.steps * 32 * 128,
                o(r.mlm_acc),
                o(r.mlm_baseline),
                o(r.sop_acc),
                x.seed,
                x.dev_accuracy,
                x.dev_f1,
                x.dev_mcc,
                x.best_epoch,
                x.seconds
            );
        }
    }
    crate::checkpoint::write_text_atomically(path, &text).map_err(|e| e.to_string())
}

/// Dev accuracy against pretraining steps: every seed as a dot, the mean as a line, and the
/// random-init mean, bag-of-words and majority-class accuracies as horizontal references.
fn plot(path: &Path, rs: &[BudgetResult], bow_acc: f64, majority_acc: f64) -> Result<(), String> {
    crate::train::plots::register_font();
    let tmp = path.with_extension("tmp.png");
    {
        let e = |x: &dyn std::fmt::Display| format!("{}: {x}", path.display());
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let xmax = rs.iter().map(|r| r.steps).max().unwrap_or(1).max(1) as f64 * 1.05;
        let all: Vec<f64> = rs.iter().flat_map(accuracies).chain([bow_acc, majority_acc]).collect();
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min) - 0.02;
        let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + 0.02;
        let mut chart = ChartBuilder::on(&root)
            .caption("polarity dev accuracy vs pretraining budget", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-xmax * 0.02..xmax, lo..hi)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("pretraining steps (32 x 128 tokens each; 0 = random init)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("dev accuracy")
            .draw()
            .map_err(|x| e(&x))?;
        let means: Vec<(f64, f64)> = rs.iter().map(|r| (r.steps as f64, mean_sd(&accuracies(r)).0)).collect();
        chart
            .draw_series(LineSeries::new(means.clone(), BLUE.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label("mean over seeds")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        let dots = rs.iter().flat_map(|r| r.runs.iter().map(move |x| (r.steps as f64, x.dev_accuracy)));
        chart
            .draw_series(dots.map(|p| Circle::new(p, 4, BLUE.mix(0.5).filled())))
            .map_err(|x| e(&x))?
            .label("one fine-tuning seed")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, BLUE.mix(0.5).filled()));
        let mut hline = |y: f64, c: RGBColor, label: String| -> Result<(), String> {
            chart
                .draw_series(LineSeries::new([(-xmax * 0.02, y), (xmax, y)], c.stroke_width(1)))
                .map_err(|x| e(&x))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(1)));
            Ok(())
        };
        if let Some(r) = rs.iter().find(|r| r.steps == 0) {
            hline(mean_sd(&accuracies(r)).0, RED, "random init (mean)".into())?;
        }
        hline(bow_acc, RGBColor(0, 140, 0), "bag-of-words logistic regression".into())?;
        hline(majority_acc, RGBColor(120, 120, 120), "majority class".into())?;
        crate::train::plots::legend_and_present(&mut chart, &root, SeriesLabelPosition::LowerRight, path)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[0.70, 0.72, 0.74]);
        assert!((m - 0.72).abs() < 1e-12);
        assert!((sd - 0.02).abs() < 1e-12);
        assert_eq!(mean_sd(&[0.5]), (0.5, 0.0));
    }

    #[test]
    fn pretraining_settings_are_the_pretrain_commands_defaults() {
        // A folder from `albert pretrain --steps N` must be reusable: the trainer compares these.
        use clap::Parser;
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: crate::cli_pretrain::PretrainArgs,
        }
        let p = P::parse_from(["x", "--steps", "700"]).a;
        let s = pretrain_settings(700, p.seed, &CorpusSource::Embedded, p.objective);
        assert_eq!(s.steps, p.steps);
        assert_eq!((s.batch_size, s.seq_len, s.accumulate), (p.batch_size, p.seq_len, p.accumulate));
        assert_eq!((s.objective, s.optimizer), (p.objective, p.optimizer));
        assert_eq!(s.weight_decay, p.weight_decay);
        assert_eq!(s.eval_batches, p.eval_batches);
        assert_eq!(p.lr, None); // the default lr of AdamW, 1e-3, is what pretrain_settings uses
        assert_eq!(s.warmup, 700 * 6 / 100);
    }

    #[test]
    fn reuse_needs_the_same_settings() {
        let a = FtRecord {
            pretrain_steps: 3000,
            seed: 1,
            epochs: 3,
            lr: 3e-4,
            batch_size: 32,
            max_seq_len: 128,
            max_train: None,
            dev_accuracy: 0.7,
            dev_f1: 0.7,
            dev_mcc: 0.4,
            best_epoch: 3,
            seconds: 100.0,
        };
        let measured_differently = FtRecord { dev_accuracy: 0.0, seconds: 0.0, ..a.clone() };
        assert!(a.same_settings(&measured_differently));
        assert!(!a.same_settings(&FtRecord { lr: 1e-4, ..a.clone() }));
        assert!(!a.same_settings(&FtRecord { seed: 2, ..a.clone() }));
        assert!(!a.same_settings(&FtRecord { max_train: Some(10), ..a }));
    }
}
