//! SentencePiece / tokenizer.json tokenizer with ALBERT normalisation (being written).
