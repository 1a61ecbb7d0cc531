//! `albert experiment objectives|sharing`: the paper's ablations (ALBERT Table 5, sentence-pair
//! objectives; Table 4, cross-layer sharing) as commands (`budget` lives in
//! `cli_experiment_budget.rs`). Each variant is pretrained from the same
//! seed with the same budget, evaluated on held-out MLM and on BOTH NSP-style and SOP-style
//! held-out pairs, then fine-tuned on the polarity set. Results go to a table, `results.csv` and
//! `results.png` in `--out`.

use crate::cli_finetune::{DEFAULT_DEV, DEFAULT_TRAIN};
use crate::cli_forward::load_model;
use crate::cli_pretrain::resolve_tokenizer;
use crate::config::{AlbertConfig, Sharing};
use crate::data::{build_eval_set, CorpusSource, LoaderConfig, Objective};
use crate::finetune::{self, Settings, Start};
use crate::train::{self, ObjectiveKind, OptimizerKind, RunOptions, TrainSettings};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Subcommand, Debug)]
pub enum ExperimentCommand {
    /// Table 5: the same model pretrained with --objective none, nsp and sop.
    Objectives(ExperimentArgs),
    /// Table 4: the same model with --sharing all, attention, ffn and none.
    Sharing(ExperimentArgs),
    /// The pretraining budget at which fine-tuning from pretrained weights beats random
    /// initialisation (several budgets, several fine-tuning seeds).
    Budget(crate::cli_experiment_budget::BudgetArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExperimentArgs {
    /// Pretraining steps per variant.
    #[arg(long, default_value_t = 600)]
    pub steps: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
    /// Peak pretraining learning rate (AdamW, 6% warmup, linear decay).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Held-out batches (of --batch-size) for each of the NSP-style and SOP-style evaluations.
    #[arg(long, default_value_t = 20)]
    pub eval_batches: usize,
    /// Fine-tuning epochs on the polarity set (0: skip fine-tuning).
    #[arg(long, default_value_t = 2)]
    pub ft_epochs: usize,
    /// Fine-tune on the first N polarity training sentences.
    #[arg(long, default_value_t = 4000)]
    pub ft_max_train: usize,
    #[arg(long, default_value_t = 2e-4)]
    pub ft_lr: f64,
    #[arg(long, default_value_t = 64)]
    pub ft_max_seq_len: usize,
    /// Only these variants (comma-separated), e.g. `--only nsp,sop`.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Default: runs/experiment-objectives or runs/experiment-sharing.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// One variant's measurements.
#[derive(Clone, Debug)]
struct Result1 {
    variant: String,
    params: usize,
    mlm_acc: f64,
    mlm_baseline: f64,
    nsp_majority: f64,
    sop_majority: f64,
    nsp_acc: Option<f64>,
    sop_acc: Option<f64>,
    dev_acc: Option<f64>,
    dev_f1: Option<f64>,
    dev_mcc: Option<f64>,
    seconds: f64,
}

/// The two pretraining ablations (the paper's tables), which share one driver.
#[derive(Clone, Copy)]
enum Ablation {
    Objectives,
    Sharing,
}

pub fn run(cmd: &ExperimentCommand) -> Result<(), String> {
    match cmd {
        ExperimentCommand::Objectives(a) => run_ablation(Ablation::Objectives, a),
        ExperimentCommand::Sharing(a) => run_ablation(Ablation::Sharing, a),
        ExperimentCommand::Budget(a) => crate::cli_experiment_budget::run(a),
    }
}

fn run_ablation(kind: Ablation, args: &ExperimentArgs) -> Result<(), String> {
    let name = match kind {
        Ablation::Objectives => "objectives",
        Ablation::Sharing => "sharing",
    };
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads: {e}"))?;
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/experiment-{name}")));
    let all: Vec<&str> = match kind {
        Ablation::Objectives => vec!["none", "nsp", "sop"],
        Ablation::Sharing => vec!["all", "attention", "ffn", "none"],
    };
    for o in &args.only {
        if !all.contains(&o.as_str()) {
            return Err(format!("--only: unknown variant {o:?} (expected some of {})", all.join(", ")));
        }
    }
    let variants: Vec<&str> =
        all.into_iter().filter(|v| args.only.is_empty() || args.only.iter().any(|o| o == v)).collect();
    println!(
        "experiment {name}: {} variants, each pretrained {} steps of {} x {} tokens (seed {}), then fine-tuned {} epoch(s) on {} polarity sentences; results in {}",
        variants.len(),
        args.steps,
        args.batch_size,
        args.seq_len,
        args.seed,
        args.ft_epochs,
        args.ft_max_train,
        out.display()
    );
    let mut results = Vec::new();
    for v in variants {
        let (objective, sharing) = match kind {
            Ablation::Objectives => (
                match v {
                    "none" => ObjectiveKind::None,
                    "nsp" => ObjectiveKind::Nsp,
                    _ => ObjectiveKind::Sop,
                },
                Sharing::All,
            ),
            Ablation::Sharing => (
                ObjectiveKind::Sop,
                match v {
                    "attention" => Sharing::Attention,
                    "ffn" => Sharing::Ffn,
                    "none" => Sharing::None,
                    _ => Sharing::All,
                },
            ),
        };
        let r = run_variant(v, objective, sharing, args, &out.join(v))?;
        println!(
            "  {v}: MLM {:.4} (baseline {:.4}), NSP {}, SOP {}, dev {} ({:.0} s)",
            r.mlm_acc,
            r.mlm_baseline,
            fmt(r.nsp_acc),
            fmt(r.sop_acc),
            fmt(r.dev_acc),
            r.seconds
        );
        results.push(r);
    }
    let first = match kind {
        Ablation::Objectives => "objective",
        Ablation::Sharing => "sharing",
    };
    println!("\n| {first} | params | MLM acc | NSP acc | SOP acc | polarity dev acc | dev F1 | dev MCC |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {:.4} | {} | {} | {} | {} | {} |",
            r.variant,
            r.params,
            r.mlm_acc,
            fmt(r.nsp_acc),
            fmt(r.sop_acc),
            fmt(r.dev_acc),
            fmt(r.dev_f1),
            fmt(r.dev_mcc)
        );
    }
    if let Some(r) = results.first() {
        println!(
            "(baselines: MLM most-frequent token {:.4}; a constant answer scores {:.4} on the NSP pairs and {:.4} on the SOP pairs; the polarity dev majority class 0.5935)",
            r.mlm_baseline, r.nsp_majority, r.sop_majority
        );
    }
    write_csv(&out.join("results.csv"), first, &results)?;
    plot(&out.join("results.png"), name, &results)?;
    println!("wrote {} and {}", out.join("results.csv").display(), out.join("results.png").display());
    Ok(())
}

fn fmt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

fn run_variant(
    variant: &str,
    objective: ObjectiveKind,
    sharing: Sharing,
    a: &ExperimentArgs,
    dir: &Path,
) -> Result<Result1, String> {
    let t0 = Instant::now();
    let _ = std::fs::remove_dir_all(dir); // every variant starts from scratch
    let tok = Arc::new(resolve_tokenizer(None, dir)?);
    let mut config = AlbertConfig::preset("tiny")?;
    config.vocab_size = tok.vocab_size();
    config.max_position_embeddings = config.max_position_embeddings.max(a.seq_len);
    config.sharing = sharing;
    let settings = TrainSettings {
        objective,
        optimizer: OptimizerKind::Adamw,
        lr: a.lr,
        warmup: a.steps * 6 / 100,
        steps: a.steps,
        batch_size: a.batch_size,
        seq_len: a.seq_len,
        accumulate: 1,
        weight_decay: 0.01,
        clip_norm: 1.0,
        seed: a.seed,
        max_predictions: 20,
        eval_batches: a.eval_batches,
        corpus: CorpusSource::Embedded.describe(),
    };
    let run = RunOptions::silent(dir, a.steps.max(1));
    println!("  {variant}: pretraining...");
    train::pretrain(&settings, &run, &config, tok.clone(), CorpusSource::Embedded)?;
    let (model, store) = load_model(dir)?;
    let params = store.iter().filter(|(_, p)| p.name.starts_with("albert.")).map(|(_, p)| p.value.numel()).sum();
    let vocab = train::vocab(tok.clone())?;
    let special = tok.special()?;
    let eval = |objective| -> Result<_, String> {
        let cfg = LoaderConfig {
            seq_len: a.seq_len,
            batch_size: a.batch_size,
            objective,
            seed: a.seed,
            ..LoaderConfig::default()
        };
        let set = build_eval_set(&CorpusSource::Embedded, vocab.clone(), &cfg, Some(a.eval_batches))
            .map_err(|e| e.to_string())?;
        // what a constant prediction scores: the larger label share
        let labels: Vec<i64> = set
            .iter()
            .map(|b| b.order_labels.ids("eval"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?
            .concat();
        let ones = labels.iter().filter(|&&l| l == 1).count() as f64 / labels.len().max(1) as f64;
        Ok((train::evaluate_set(&model, &store, &set, special)?, ones.max(1.0 - ones)))
    };
    let (sop, sop_majority) = eval(Objective::Sop)?;
    let (nsp, nsp_majority) = eval(Objective::Nsp)?;
    let has_head = model.heads.order.is_some();
    let (mut dev_acc, mut dev_f1, mut dev_mcc) = (None, None, None);
    if a.ft_epochs > 0 {
        println!("  {variant}: fine-tuning...");
        let s = Settings {
            start: Start::Pretrained(dir.to_path_buf()),
            train: PathBuf::from(DEFAULT_TRAIN),
            dev: PathBuf::from(DEFAULT_DEV),
            epochs: a.ft_epochs,
            lr: a.ft_lr,
            batch_size: 32,
            max_seq_len: a.ft_max_seq_len.min(config.max_position_embeddings),
            seed: a.seed,
            warmup: 0.1,
            weight_decay: 0.01,
            max_train: Some(a.ft_max_train),
            out: None,
            device: engine::Device::Cpu,
            progress_bar: false,
            quiet: true,
        };
        let o = finetune::finetune(&s, &|_| {})?;
        (dev_acc, dev_f1, dev_mcc) = (Some(o.best.accuracy), Some(o.best.f1), Some(o.best.mcc));
    }
    Ok(Result1 {
        variant: variant.to_string(),
        params,
        mlm_acc: sop.mlm_acc,
        mlm_baseline: sop.mlm_baseline_acc,
        nsp_majority,
        sop_majority,
        nsp_acc: has_head.then_some(nsp.order_acc),
        sop_acc: has_head.then_some(sop.order_acc),
        dev_acc,
        dev_f1,
        dev_mcc,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn write_csv(path: &Path, first: &str, rs: &[Result1]) -> Result<(), String> {
    let o = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.6}"));
    let mut text = format!(
        "{first},params,mlm_acc,mlm_baseline_acc,nsp_acc,nsp_constant_acc,sop_acc,sop_constant_acc,dev_acc,dev_f1,dev_mcc,seconds\n"
    );
    for r in rs {
        text += &format!(
            "{},{},{:.6},{:.6},{},{:.6},{},{:.6},{},{},{},{:.1}\n",
            r.variant,
            r.params,
            r.mlm_acc,
            r.mlm_baseline,
            o(r.nsp_acc),
            r.nsp_majority,
            o(r.sop_acc),
            r.sop_majority,
            o(r.dev_acc),
            o(r.dev_f1),
            o(r.dev_mcc),
            r.seconds
        );
    }
    crate::checkpoint::write_text_atomically(path, &text).map_err(|e| e.to_string())
}

/// A bar series: legend, colour, and the value of a variant (None: not measured).
type Metric = (&'static str, RGBColor, fn(&Result1) -> Option<f64>);

/// Grouped bars: per variant, MLM / NSP / SOP / dev accuracy (missing values left out).
fn plot(path: &Path, name: &str, rs: &[Result1]) -> Result<(), String> {
    crate::train::plots::register_font();
    let metrics: [Metric; 4] = [
        ("MLM acc", BLUE, |r| Some(r.mlm_acc)),
        ("NSP acc", RGBColor(200, 120, 0), |r| r.nsp_acc),
        ("SOP acc", RED, |r| r.sop_acc),
        ("polarity dev acc", RGBColor(0, 140, 0), |r| r.dev_acc),
    ];
    let tmp = path.with_extension("tmp.png");
    {
        let e = |x: &dyn std::fmt::Display| format!("{}: {x}", path.display());
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let n = rs.len().max(1) as f64;
        let labels: Vec<String> = rs.iter().map(|r| r.variant.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("experiment {name}: held-out accuracies"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n, 0f64..1f64)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rs.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 1e-6 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("accuracy")
            .draw()
            .map_err(|x| e(&x))?;
        let w = 0.8 / metrics.len() as f64;
        for (m, (label, color, get)) in metrics.iter().enumerate() {
            let c = *color;
            let bars: Vec<Rectangle<(f64, f64)>> = rs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let v = get(r)?;
                    let x0 = i as f64 + 0.1 + m as f64 * w;
                    Some(Rectangle::new([(x0, 0.0), (x0 + w * 0.9, v)], c.filled()))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(|x| e(&x))?
                .label(*label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        crate::train::plots::legend_and_present(&mut chart, &root, SeriesLabelPosition::UpperRight, path)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
