//! Pretraining data: corpus streaming, instance creation (SOP/NSP, n-gram masking), batching.
