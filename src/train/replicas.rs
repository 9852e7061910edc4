//! Data parallelism over CPU cores (`train.replicas`): each training batch is split into one
//! chunk per model replica, and every replica runs the forward and backward pass of its chunk on
//! its own thread, with its share of the intra-op threads (one each on two cores).
//!
//! Why: inside one LibTorch operator the intra-op threads meet at a barrier, hundreds of times
//! per step, and on a shared host a thread that another process delays holds the others at every
//! one of them. Independent replicas meet once per step. Measured on the shared 2-core Xeon
//! (PyTorch eager, airbench94 bf16, alternating rounds): two single-threaded processes of batch
//! 1000 trained 958-1,167 img/s together, one two-threaded process of batch 2000 541-742 img/s.
//!
//! Semantics: as PyTorch's `DistributedDataParallel` with one process per core, each chunk's mean
//! loss is weighted by its share of the batch and the gradients are summed, and BatchNorm
//! normalises each chunk by its own statistics ("ghost" batch norm). Unlike DDP, which hands
//! rank 0's buffers to the others, the running statistics become the replicas' average. The
//! optimizer, weight averages and checkpoints see only replica 0 (the trainer's model); the
//! others copy its weights before every pass. Results are bit-reproducible for a given replica
//! count, and differ from a single replica's.

use tch::{Device, Kind, Tensor};

use super::step;
use crate::data::loader::{split_range, Batch};
use crate::error::Result;
use crate::models::context::seed_dropout;
use crate::models::{Model, ModelArgs};
use crate::seed::mix;

/// How the forward and backward pass of a step run, the same for every chunk.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Matmul precision (`None` = fp32).
    pub compute: Option<Kind>,
    /// Label smoothing of the cross-entropy.
    pub smoothing: f64,
    /// Factor on the loss for the backward pass (fp16 loss scale / micro-batches per step).
    pub scale: f64,
    /// Gradient checkpointing (segmented models).
    pub checkpointing: bool,
}

/// The data-parallel replicas of a model, besides the model itself (replica 0).
pub struct Replicas {
    copies: Vec<Model>,
}

impl Replicas {
    /// `count - 1` copies of `model`'s architecture on a CPU. None for `count` <= 1, nor on CUDA,
    /// where one device trains the whole batch (said once per process): steps then run on the
    /// calling thread, exactly as without replicas.
    pub fn new(model: &Model, args: &ModelArgs, count: usize, channels_last: bool) -> Result<Replicas> {
        let device = model.vs.device();
        if count > 1 && device != Device::Cpu {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                crate::notice::note(format!(
                    "`train.replicas` = {count} applies to CPU training; on {device:?} the batch trains as one"
                ))
            });
            return Ok(Replicas { copies: Vec::new() });
        }
        let mut copies = Vec::new();
        for _ in 1..count {
            let mut copy = Model::new(&model.name, args, device)?;
            if channels_last {
                copy.to_channels_last();
            }
            copies.push(copy);
        }
        Ok(Replicas { copies })
    }

    /// Replicas in all, the model itself included.
    pub fn count(&self) -> usize {
        self.copies.len() + 1
    }

    /// Forward and backward pass of `batch`, split across the replicas; the gradients of the
    /// chunks' mean losses, each weighted by its share of the batch and times `pass.scale`, add
    /// into `model`'s `.grad()` (one replica: one `backward()` of the batch's loss times
    /// `pass.scale`). `dropout_seed` seeds the dropout masks of chunk 0 of the global batch;
    /// chunk `c > 0` mixes it with `c`, replica `k` training chunk `first_chunk + k` (a rank of a
    /// multi-process run trains chunks from `rank x replicas` on, so two ranks draw the masks
    /// of two replicas in one process). Returns the batch's mean loss and its count of correct
    /// top-1 predictions.
    pub fn forward_backward(
        &mut self,
        model: &mut Model,
        batch: &Batch,
        pass: Pass,
        (dropout_seed, first_chunk): (u64, usize),
    ) -> (f64, f64) {
        let target = batch.targets.as_ref().unwrap_or(&batch.labels);
        let chunk_seed = |c: usize| if c == 0 { dropout_seed } else { mix(dropout_seed, c as u64) };
        if self.copies.is_empty() {
            seed_dropout(chunk_seed(first_chunk));
            return chunk_step(model, &batch.images, target, &batch.labels, pass);
        }
        self.copy_weights_from(model);
        let n = batch.labels.size()[0];
        let parts = split(n, self.count());
        let threads = tch::get_num_threads();
        let each = (threads / self.count() as i32).max(1);
        let replicas = std::iter::once(&mut *model).chain(self.copies.iter_mut());
        let results: Vec<(f64, f64)> = std::thread::scope(|s| {
            let handles: Vec<_> = replicas
                .zip(&parts)
                .enumerate()
                .map(|(k, (m, &(start, len)))| {
                    let chunk = |t: &Tensor| t.narrow(0, start, len);
                    let (images, target, labels) = (chunk(&batch.images), chunk(target), chunk(&batch.labels));
                    let pass = Pass { scale: pass.scale * len as f64 / n as f64, ..pass };
                    let seed = chunk_seed(first_chunk + k);
                    s.spawn(move || {
                        tch::set_num_threads(each); // this thread's share; the caller's stays as it was
                        seed_dropout(seed);
                        chunk_step(m, &images, &target, &labels, pass)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        // Threads started from now on (the loader's) get the caller's count again.
        tch::set_num_threads(threads);
        self.reduce_into(model);
        let loss = results.iter().zip(&parts).map(|((l, _), &(_, len))| l * len as f64 / n as f64).sum();
        (loss, results.iter().map(|(_, c)| c).sum())
    }

    /// Copies `model`'s parameters and buffers, and which parameters train, into every copy, and
    /// clears the copies' gradients.
    fn copy_weights_from(&mut self, model: &Model) {
        let _guard = tch::no_grad_guard();
        let source = model.vs.variables();
        for copy in &mut self.copies {
            for (name, mut var) in copy.vs.variables() {
                let src = &source[&name];
                var.copy_(src);
                if var.requires_grad() != src.requires_grad() {
                    let _ = var.set_requires_grad(src.requires_grad());
                }
                var.zero_grad();
            }
        }
    }

    /// Adds the copies' gradients into `model`'s, in replica order (so the sum is reproducible),
    /// and makes its BatchNorm running statistics the replicas' average.
    fn reduce_into(&self, model: &Model) {
        let _guard = tch::no_grad_guard();
        let copies: Vec<_> = self.copies.iter().map(|c| c.vs.variables()).collect();
        for (name, mut var) in model.vs.variables() {
            if var.requires_grad() {
                let mut grad = var.grad();
                for c in &copies {
                    let g = c[&name].grad();
                    // Every replica runs the same graph: replica 0 has each gradient another has.
                    assert!(grad.defined() || !g.defined(), "{name}: replica 0 has no gradient to add to");
                    if g.defined() {
                        let _ = grad.g_add_(&g);
                    }
                }
            } else if is_running_stat(&name) {
                for c in &copies {
                    let _ = var.g_add_(&c[&name]);
                }
                let _ = var.g_div_scalar_(self.count() as f64);
            }
        }
    }
}

/// BatchNorm's running statistics (PyTorch `state_dict` names).
fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// `(start, length)` of `parts` consecutive chunks of `n` items, the first `n % parts` one longer
/// (the split of a batch among ranks too: [`split_range`]).
pub fn split(n: i64, parts: usize) -> Vec<(i64, i64)> {
    split_range(n as usize, parts).into_iter().map(|(s, l)| (s as i64, l as i64)).collect()
}

/// Forward pass, loss and backward pass of one chunk on the calling thread (the loss times
/// `pass.scale` for the backward). Returns (mean loss, correct count).
fn chunk_step(model: &Model, images: &Tensor, target: &Tensor, labels: &Tensor, pass: Pass) -> (f64, f64) {
    let (compute, smoothing, scale) = (pass.compute, pass.smoothing, pass.scale);
    let checkpointed = if pass.checkpointing {
        step::forward_backward_checkpointed(model, images, target, compute, smoothing, scale)
    } else {
        None
    };
    let (loss, logits) = match checkpointed {
        Some(done) => done,
        None => {
            let (loss, logits) = step::forward_loss(model, images, target, compute, smoothing);
            if scale == 1.0 {
                loss.backward();
            } else {
                (&loss * scale).backward();
            }
            (loss, logits)
        }
    };
    let correct = tch::no_grad(|| logits.argmax(1, false).eq_tensor(labels).sum(Kind::Float).double_value(&[]));
    (loss.double_value(&[]), correct)
}
