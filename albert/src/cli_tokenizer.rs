//! `albert tokenizer train`: a unigram vocabulary (ALBERT specials at ids 0..4) trained in Rust on
//! the training documents of a corpus, written as `tokenizer.json`.

use crate::data::{CorpusSource, Split};
use crate::tokenizer::Tokenizer;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a unigram tokenizer on a corpus (default: the embedded one) and save tokenizer.json.
    Train(TrainArgs),
    /// Print the pieces and ids of a text.
    Encode {
        #[arg(long)]
        tokenizer: PathBuf,
        text: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// One sentence per line, blank line between documents; a file or folder. Default: embedded.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    #[arg(long, default_value_t = 8000)]
    pub vocab_size: usize,
    #[arg(long)]
    pub out: PathBuf,
    /// Train on at most this many sentences (from the start of the training split); the trainer
    /// holds its input in memory.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_sentences: usize,
}

pub fn run(cmd: &TokenizerCommand) -> Result<(), String> {
    match cmd {
        TokenizerCommand::Train(a) => {
            let source = match &a.corpus {
                Some(p) => CorpusSource::path(p),
                None => CorpusSource::Embedded,
            };
            let mut sentences = Vec::new();
            for doc in source.documents(Split::Train).map_err(|e| e.to_string())? {
                let doc = doc.map_err(|e| e.to_string())?;
                sentences.extend(doc.sentences);
                if sentences.len() >= a.max_sentences {
                    sentences.truncate(a.max_sentences);
                    break;
                }
            }
            let n = sentences.len();
            let t0 = std::time::Instant::now();
            let tok = Tokenizer::train(sentences.into_iter(), a.vocab_size)?;
            tok.save(&a.out)?;
            println!(
                "trained a {}-piece unigram tokenizer on {n} sentences of {} in {:.1} s: {}",
                tok.vocab_size(),
                source.describe(),
                t0.elapsed().as_secs_f64(),
                a.out.join("tokenizer.json").display()
            );
            Ok(())
        }
        TokenizerCommand::Encode { tokenizer, text } => {
            let tok = Tokenizer::from_dir(tokenizer)?;
            let ids = tok.encode(text);
            println!("{:?}", tok.pieces(text));
            println!("{ids:?}");
            Ok(())
        }
    }
}
