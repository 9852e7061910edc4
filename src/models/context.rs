//! The model layer's execution context: per-thread state that the layers read while they run,
//! set around a forward pass by the trainer, the evaluation and the tools. Kept in this one
//! module so what can change a forward pass besides its input is listed in one place:
//! - autocast: the dtype conv and linear layers compute in ([`autocast`]);
//! - MAC counting ([`count_macs`]) and layer tracing ([`trace_layers`]), for summaries;
//! - the dropout generator ([`seed_dropout`]), so masks depend on the run's seed alone;
//! - recomputation under gradient checkpointing ([`recomputing`]);
//! - taps ([`tap`], [`catch`], [`catch_kind`], [`tap_points`]): named intermediate outputs (a block's, a layer's,
//!   a ViT's attention weights) handed to the explanations, which need their values and gradients.
//!
//! The scoped setters restore the previous value when their closure returns; `autocast`,
//! `count_macs` and `recomputing` also when it unwinds (a failed shape probe must not leave them
//! on).

use rand::SeedableRng;
use rand_pcg::Pcg64;
use std::cell::{Cell, RefCell};
use tch::{Kind, Tensor};

thread_local! {
    static AUTOCAST: Cell<Option<Kind>> = const { Cell::new(None) };
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
    static DROPOUT_RNG: RefCell<Pcg64> = RefCell::new(Pcg64::seed_from_u64(0));
    static RECOMPUTING: Cell<bool> = const { Cell::new(false) };
    static TRACE: RefCell<Option<Vec<LayerRecord>>> = const { RefCell::new(None) };
    static TAPS: RefCell<Option<Taps>> = const { RefCell::new(None) };
}

/// What a named tap point outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TapKind {
    /// A conv or batch-norm layer's output.
    Layer,
    /// A block's output (a residual block, a conv-BN-activation unit, a transformer block): the
    /// layers class activation maps are usually computed at.
    Block,
    /// Attention probabilities `(B, heads, tokens, tokens)` of a transformer block.
    Attention,
    /// The input of a linear layer (named as the layer): the last one's is the penultimate
    /// features, the embedding of an image.
    LinearInput,
}

/// A named point of a forward pass, as [`tap_points`] lists them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TapPoint {
    /// The module's name in the PyTorch transcription (`layer4.1`, `features.10`).
    pub name: String,
    /// What it outputs.
    pub kind: TapKind,
    /// Its output shape, batch dimension included.
    pub shape: Vec<i64>,
}

/// An armed tap session: the points seen so far, and the outputs of the wanted ones.
struct Taps {
    wanted: Vec<String>,
    caught: Vec<Option<Tensor>>,
    /// Every output of this kind is kept too, in call order ([`catch_kind`]).
    wanted_kind: Option<TapKind>,
    caught_of_kind: Vec<Tensor>,
    seen: Vec<TapPoint>,
}

impl Taps {
    fn new(wanted: Vec<String>, wanted_kind: Option<TapKind>) -> Taps {
        let caught = wanted.iter().map(|_| None).collect();
        Taps { wanted, caught, wanted_kind, caught_of_kind: Vec::new(), seen: Vec::new() }
    }
}

/// Marks `y` as the output of the tap point `name`; returns `y`. Costs one thread-local check
/// unless [`catch`] or [`tap_points`] is running.
pub fn tap(name: &str, kind: TapKind, y: Tensor) -> Tensor {
    TAPS.with(|t| {
        if let Some(taps) = t.borrow_mut().as_mut() {
            taps.seen.push(TapPoint { name: name.to_string(), kind, shape: y.size() });
            if let Some(i) = taps.wanted.iter().position(|w| w == name) {
                taps.caught[i] = Some(y.shallow_clone());
            }
            if taps.wanted_kind == Some(kind) {
                taps.caught_of_kind.push(y.shallow_clone());
            }
        }
    });
    y
}

/// Runs `f` and returns, beside its result, the outputs of the tap points `names` (`None` for a
/// name the forward pass did not reach). The tensors are the graph's own, so gradients can be
/// taken with respect to them.
pub fn catch<T>(names: &[String], f: impl FnOnce() -> T) -> (T, Vec<Option<Tensor>>) {
    let (out, taps) = armed(Taps::new(names.to_vec(), None), f);
    (out, taps.map(|t| t.caught).unwrap_or_default())
}

/// Runs `f` and returns, beside its result, the outputs of every tap point of `kind`, in call
/// order (e.g. the attention weights of each transformer block).
pub fn catch_kind<T>(kind: TapKind, f: impl FnOnce() -> T) -> (T, Vec<Tensor>) {
    let (out, taps) = armed(Taps::new(Vec::new(), Some(kind)), f);
    (out, taps.map(|t| t.caught_of_kind).unwrap_or_default())
}

/// The tap points `f`'s forward pass goes through, in call order.
pub fn tap_points(f: impl FnOnce()) -> Vec<TapPoint> {
    armed(Taps::new(Vec::new(), None), f).1.map(|t| t.seen).unwrap_or_default()
}

/// Runs `f` with `taps` armed on this thread; returns them with `f`'s result.
fn armed<T>(taps: Taps, f: impl FnOnce() -> T) -> (T, Option<Taps>) {
    let prev = TAPS.with(|t| t.replace(Some(taps)));
    let _restore = RestoreTaps(prev);
    let out = f();
    (out, TAPS.with(|t| t.borrow_mut().take()))
}

/// Puts the previous tap session back, also when the forward pass unwinds.
struct RestoreTaps(Option<Taps>);

impl Drop for RestoreTaps {
    fn drop(&mut self) {
        let prev = self.0.take();
        TAPS.with(|t| *t.borrow_mut() = prev);
    }
}

/// One layer's entry in a model summary, recorded by [`trace_layers`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    /// Parameter path, as in the state_dict (`layer1.0.conv1`).
    pub name: String,
    /// Layer type and its hyper-parameters (`Conv2d 3x3 s1`).
    pub kind: String,
    /// Output shape, batch dimension included.
    pub output_shape: Vec<i64>,
    /// Trainable parameters of this layer.
    pub params: i64,
    /// Multiply-accumulates per forward pass of the traced batch.
    pub macs: u64,
}

/// Runs `f` and returns the conv, linear and batch-norm layers it ran, in call order.
pub fn trace_layers(f: impl FnOnce()) -> Vec<LayerRecord> {
    let prev = TRACE.with(|t| t.replace(Some(Vec::new())));
    f();
    TRACE.with(|t| t.replace(prev)).unwrap_or_default()
}

/// Appends a layer to the trace when one is being recorded; otherwise costs one thread-local
/// check (the description is only built when tracing).
pub(super) fn record(
    name: &str,
    kind: impl FnOnce() -> String,
    y: &Tensor,
    params: &[Option<&Tensor>],
    macs_per_image: u64,
) {
    TRACE.with(|t| {
        if let Some(records) = t.borrow_mut().as_mut() {
            // Trainable parameters, as `Model::num_params` counts them (fixed filters are not).
            let params = params.iter().flatten().filter(|p| p.requires_grad()).map(|p| p.numel() as i64).sum();
            let output_shape = y.size();
            let macs = macs_per_image * output_shape[0] as u64;
            records.push(LayerRecord { name: name.to_string(), kind: kind(), output_shape, params, macs });
        }
    });
}

/// Runs `f` as a gradient-checkpointing recomputation: BatchNorm uses batch statistics as in
/// training but leaves its running statistics alone (they were updated by the first pass).
pub fn recomputing<T>(f: impl FnOnce() -> T) -> T {
    let _restore = Restore(&RECOMPUTING, RECOMPUTING.with(|r| r.replace(true)));
    f()
}

/// The dropout generator's state, to replay the same masks in a recomputation.
pub fn dropout_rng_state() -> Pcg64 {
    DROPOUT_RNG.with(|r| r.borrow().clone())
}

/// Restores a state taken by [`dropout_rng_state`].
pub fn set_dropout_rng_state(state: Pcg64) {
    DROPOUT_RNG.with(|r| *r.borrow_mut() = state);
}

/// Reseeds this thread's dropout generator. Dropout masks come from it rather than LibTorch's
/// process-global generator, so a run's masks depend only on its own seed (the trainer reseeds
/// per epoch), even when other threads use LibTorch's generator meanwhile.
pub fn seed_dropout(seed: u64) {
    DROPOUT_RNG.with(|r| *r.borrow_mut() = Pcg64::seed_from_u64(seed));
}

/// Runs `f` with conv/linear computing in `kind` (`None` = the weights' own dtype, fp32; the
/// one exception is in the module doc).
pub fn autocast<T>(kind: Option<Kind>, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(&AUTOCAST, AUTOCAST.with(|a| a.replace(kind)));
    f()
}

/// Counts the multiply-accumulates of conv and linear layers run inside `f`.
pub fn count_macs(f: impl FnOnce()) -> u64 {
    let _restore = Restore(&MACS, MACS.with(|m| m.replace(Some(0))));
    f();
    MACS.with(Cell::get).unwrap_or(0)
}

/// Puts a thread-local setting back when dropped, also when a LibTorch error unwinds through the
/// closure that changed it (a shape probe that fails must not leave autocast or counting on).
struct Restore<V: Copy + 'static>(&'static std::thread::LocalKey<Cell<V>>, V);

impl<V: Copy + 'static> Drop for Restore<V> {
    fn drop(&mut self) {
        self.0.with(|c| c.set(self.1));
    }
}

pub(super) fn add_macs(n: u64) {
    MACS.with(|m| {
        if let Some(v) = m.get() {
            m.set(Some(v + n));
        }
    });
}

pub(super) fn cast(t: &Tensor) -> Tensor {
    match AUTOCAST.with(Cell::get) {
        Some(k) if t.kind() != k => t.to_kind(k),
        _ => t.shallow_clone(),
    }
}

/// Runs `f` with this thread's dropout generator (for other stochastic layers).
pub fn with_dropout_rng<T>(f: impl FnOnce(&mut Pcg64) -> T) -> T {
    DROPOUT_RNG.with(|r| f(&mut r.borrow_mut()))
}

/// The dtype conv and linear layers compute in on this thread (`None`: the weights' own).
pub fn autocast_kind() -> Option<Kind> {
    AUTOCAST.with(Cell::get)
}

/// Whether a gradient-checkpointing recomputation is running on this thread.
pub fn is_recomputing() -> bool {
    RECOMPUTING.with(Cell::get)
}
