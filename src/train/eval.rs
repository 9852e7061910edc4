//! Evaluation: loss, top-1, per-class accuracy and confusion matrix over a loader.

use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

pub use crate::config::Tta;
use crate::data::loader::Loader;
use crate::metrics::{Confusion, EvalResult};
use crate::models::context::autocast;
use crate::models::Model;

/// Logits with test-time augmentation (airbench's `infer`, Jordan 2024, arXiv 2404.00498):
/// level 0 = the images as they are; 1 = the mean with their mirror images; 2 = half that, half
/// the mirrored mean over the two diagonal 1-pixel translations (reflect padding).
pub fn tta_logits(model: &Model, x: &Tensor, compute: Option<Kind>, level: i64) -> Tensor {
    let net = |x: &Tensor| plain_logits(model, x, compute);
    with_views(&net, x, net(x), level)
}

/// One forward pass in eval mode, conv/linear in `compute`, logits in fp32.
fn plain_logits(model: &Model, x: &Tensor, compute: Option<Kind>) -> Tensor {
    autocast(compute, || model.forward(x, false)).to_kind(Kind::Float)
}

/// Combines `plain` (= `net(x)`) with the extra views of `level` (see [`tta_logits`]).
fn with_views(net: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, plain: Tensor, level: i64) -> Tensor {
    if level == 0 {
        return plain;
    }
    let mirrored = (plain + net(&x.flip([3]))) * 0.5;
    if level == 1 {
        return mirrored;
    }
    let (h, w) = (x.size()[2], x.size()[3]);
    let padded = x.reflection_pad2d([1, 1, 1, 1]);
    let shifted = |o: i64| {
        let s = padded.narrow(2, o, h).narrow(3, o, w);
        (net(&s) + net(&s.flip([3]))) * 0.5
    };
    mirrored * 0.5 + (shifted(0) + shifted(2)) * 0.25
}

/// Evaluates `model` (in eval mode) on every batch of `loader`, computing conv/linear in
/// `compute` (None = fp32), with test-time augmentation `tta`.
///
/// With `tta.cutoff` > 0 the plain logits are computed for every image and the extra views only
/// for the images whose top-1 probability is below the cutoff: confident images are rarely turned
/// by the views, so this keeps most of TTA's gain at a fraction of its cost. The unsure images
/// are queued and run in batches of the loader's size, because oneDNN builds its kernels per
/// input shape: ragged per-batch subsets would rebuild them on every batch.
pub fn evaluate(model: &Model, loader: &Loader, compute: Option<Kind>, num_classes: usize, tta: Tta) -> EvalResult {
    let start = Instant::now();
    let (logits, labels, augmented) = eval_logits(model, loader, compute, num_classes, tta);
    summarise(&logits, &labels, num_classes, augmented, start)
}

/// The final logits `(N, classes)` (float, on the loader's device) and labels `(N,)` of every
/// image of `loader`, and how many images got the TTA views: [`evaluate`] before its summary
/// (one rank's part of an evaluation that several processes share).
pub fn eval_logits(
    model: &Model,
    loader: &Loader,
    compute: Option<Kind>,
    num_classes: usize,
    tta: Tta,
) -> (Tensor, Tensor, i64) {
    let _guard = tch::no_grad_guard();
    let net = |x: &Tensor| plain_logits(model, x, compute);
    let mut unsure = UnsureQueue::new(tta.level, loader.batch_size(), loader.channels_last());
    let (mut logits, mut labels, mut offset) = (Vec::new(), Vec::new(), 0);
    for batch in loader.epoch(0) {
        let plain = net(&batch.images);
        let n = plain.size()[0];
        let batch_logits = if tta.level > 0 && tta.cutoff <= 0.0 {
            unsure.augmented += n;
            with_views(&net, &batch.images, plain, tta.level)
        } else {
            if tta.level > 0 {
                let rows = plain.softmax(1, Kind::Float).amax([1], false).lt(tta.cutoff).nonzero().squeeze_dim(1);
                unsure.push(&batch.images, &plain, &rows, offset);
                unsure.run_full_batches(&net);
            }
            plain
        };
        logits.push(batch_logits);
        labels.push(batch.labels);
        offset += n;
    }
    unsure.run_rest(&net);
    if logits.is_empty() {
        let cpu = tch::Device::Cpu;
        return (Tensor::zeros([0, num_classes as i64], (Kind::Float, cpu)), Tensor::zeros([0], (Kind::Int64, cpu)), 0);
    }
    let mut logits = Tensor::cat(&logits, 0);
    unsure.write_into(&mut logits);
    (logits, Tensor::cat(&labels, 0), unsure.augmented)
}

/// Loss, accuracy, confusion and per-image predictions of the final logits; `augmented` images
/// got the TTA views, `start` is when the evaluation began.
pub fn summarise(logits: &Tensor, labels: &Tensor, num_classes: usize, augmented: i64, start: Instant) -> EvalResult {
    let mut confusion = Confusion::new(num_classes);
    let loss = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Sum, -100, 0.0).double_value(&[]);
    let (conf, preds) = logits.softmax(1, Kind::Float).max_dim(1, false);
    let cpu = tch::Device::Cpu;
    let predictions = Vec::<i64>::try_from(preds.to_device(cpu)).unwrap_or_default();
    confusion.add(&Vec::<i64>::try_from(labels.to_device(cpu)).unwrap_or_default(), &predictions);
    let n = confusion.total().max(1) as f64;
    EvalResult {
        loss: loss / n,
        acc: confusion.accuracy(),
        acc_top5: top_k_accuracy(logits, labels, 5),
        per_class_acc: confusion.per_class_accuracy(),
        confusion,
        secs: start.elapsed().as_secs_f64(),
        predictions,
        confidences: Vec::<f32>::try_from(conf.to_device(cpu)).unwrap_or_default(),
        tta_share: augmented as f64 / n,
    }
}

/// Fraction of the rows of `logits` (N, classes) whose label (N,) is among their `k` highest
/// logits (0 for no rows).
pub fn top_k_accuracy(logits: &Tensor, labels: &Tensor, k: i64) -> f64 {
    let n = logits.size()[0];
    if n == 0 {
        return 0.0;
    }
    let k = k.min(logits.size()[1]);
    let (_, top) = logits.topk(k, 1, true, false);
    let hit = top.eq_tensor(&labels.unsqueeze(1)).any_dim(1, false);
    hit.sum(Kind::Float).double_value(&[]) / n as f64
}

/// The images waiting for their test-time augmentation views (with their plain logits and
/// their rows in the evaluation), run `batch` at a time.
struct UnsureQueue {
    level: i64,
    batch: i64,
    images: Vec<Tensor>,
    plain: Vec<Tensor>,
    rows: Vec<Tensor>,
    queued: i64,
    /// Whether the loader's batches are channels-last (the subsets are made so again).
    channels_last: bool,
    /// `(rows, logits with the views)` of the images done.
    done: Vec<(Tensor, Tensor)>,
    augmented: i64,
}

impl UnsureQueue {
    fn new(level: i64, batch: i64, channels_last: bool) -> Self {
        UnsureQueue {
            level,
            batch: batch.max(1),
            images: Vec::new(),
            plain: Vec::new(),
            rows: Vec::new(),
            queued: 0,
            channels_last,
            done: Vec::new(),
            augmented: 0,
        }
    }

    /// Queues the images `rows` of a batch whose first image is row `offset` of the evaluation.
    fn push(&mut self, images: &Tensor, plain: &Tensor, rows: &Tensor, offset: i64) {
        let n = rows.size()[0];
        if n > 0 {
            self.images.push(images.index_select(0, rows));
            self.plain.push(plain.index_select(0, rows));
            self.rows.push(rows + offset);
            self.queued += n;
        }
    }

    fn run_full_batches(&mut self, net: &dyn Fn(&Tensor) -> Tensor) {
        while self.queued >= self.batch {
            self.run(net, self.batch);
        }
    }

    fn run_rest(&mut self, net: &dyn Fn(&Tensor) -> Tensor) {
        if self.queued > 0 {
            self.run(net, self.queued);
        }
    }

    /// Runs the views of the first `n` queued images.
    fn run(&mut self, net: &dyn Fn(&Tensor) -> Tensor, n: i64) {
        let take = |parts: &mut Vec<Tensor>| {
            let all = Tensor::cat(parts, 0);
            *parts = vec![all.narrow(0, n, all.size()[0] - n)];
            all.narrow(0, 0, n)
        };
        // The subset copies lose a channels-last layout (which the convolutions are fastest on).
        let images = take(&mut self.images);
        let images = if self.channels_last { crate::device::channels_last(&images) } else { images };
        let plain = take(&mut self.plain);
        let rows = take(&mut self.rows);
        self.done.push((rows, with_views(net, &images, plain, self.level)));
        self.queued -= n;
        self.augmented += n;
    }

    /// Replaces the plain logits of the augmented rows.
    fn write_into(&self, logits: &mut Tensor) {
        for (rows, views) in &self.done {
            let _ = logits.index_copy_(0, rows, views);
        }
    }
}
