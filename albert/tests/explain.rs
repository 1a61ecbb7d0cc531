//! The forward trace behind `albert explain`: ops grouped by layer, the shared layer's weight ids
//! repeated at every layer (and distinct ones without sharing), FLOP counts of the products, and
//! nothing recorded when the trace is off.

use albert::model::{Albert, Heads, Inputs, Mode};
use albert::{AlbertConfig, Sharing};
use autograd::trace;
use autograd::{ParamStore, Tape};
use engine::Tensor;
use std::collections::BTreeSet;

fn config(sharing: Sharing) -> AlbertConfig {
    AlbertConfig {
        vocab_size: 30,
        embedding_size: 8,
        hidden_size: 12,
        num_hidden_layers: 3,
        num_attention_heads: 2,
        intermediate_size: 20,
        max_position_embeddings: 16,
        sharing,
        ..AlbertConfig::default()
    }
}

fn traced(sharing: Sharing) -> Vec<trace::Entry> {
    let mut store = ParamStore::new();
    let model = Albert::new(&config(sharing), Heads::classification(2), &mut store, 1).unwrap();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(vec![2, 7, 9, 11, 3], &[1, 5]).unwrap(),
        attention_mask: None,
        token_type_ids: None,
    };
    let tape = Tape::new();
    trace::start();
    let enc = model.encode(&tape, &store, &inputs, &mut Mode::Eval, false).unwrap();
    model.classifier_logits(&tape, &store, enc.pooled.as_ref().unwrap(), &mut Mode::Eval).unwrap();
    trace::finish()
}

fn layer_ids(entries: &[trace::Entry], layer: usize) -> BTreeSet<usize> {
    let scope = format!("layer {layer}");
    entries.iter().filter(|e| e.scope == scope).flat_map(|e| e.params.iter().flatten().map(|p| p.0)).collect()
}

#[test]
fn the_trace_groups_ops_by_layer_and_shows_shared_weights() {
    let all = traced(Sharing::All);
    let scopes: Vec<&str> = all.iter().map(|e| e.scope.as_str()).collect();
    assert_eq!(scopes.first(), Some(&"embeddings"));
    assert!(scopes.contains(&"layer 2") && scopes.contains(&"pooler") && scopes.last() == Some(&"pooled head"));
    let first = layer_ids(&all, 0);
    assert_eq!(first.len(), 16, "a block reads 16 tensors");
    assert_eq!(layer_ids(&all, 1), first);
    assert_eq!(layer_ids(&all, 2), first);
    let none = traced(Sharing::None);
    assert!(layer_ids(&none, 0).is_disjoint(&layer_ids(&none, 1)));
    // the query projection: [1, 5, 12] x [12, 12]^T + bias = 2 * 5 * 12 * 12 + 5 * 12
    let q = all.iter().find(|e| e.scope == "layer 0" && e.op == "matmul").unwrap();
    assert_eq!((q.inputs[0].clone(), q.output.clone()), (vec![1, 5, 12], vec![1, 5, 12]));
    assert_eq!(q.flops, 2 * 5 * 12 * 12 + 5 * 12);
    assert_eq!(q.bytes, 4 * (5 * 12 + 12 * 12 + 12 + 5 * 12));
    // off: nothing is recorded
    let tape = Tape::no_grad();
    let x = tape.constant(Tensor::from_vec(vec![1f32, 2.0], &[2]).unwrap());
    x.add(&x).unwrap();
    assert!(trace::finish().is_empty());
}
