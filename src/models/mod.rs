//! Model zoo: shared layers, one file per architecture, and the registry (one table).

pub mod airbench;
pub mod context;
pub mod efficientnet;
pub mod improved_cnn;
pub mod layers;
pub mod resnet;
pub mod searchnet;
pub mod simple_cnn;
pub mod torchscript;
pub mod vgg;
pub mod vit;

use tch::nn::{ModuleT, Path, VarStore};
use tch::{Device, Kind, Tensor};

use crate::config_err;
use crate::error::Result;

/// What every architecture is built from: the task's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelArgs {
    /// Output classes.
    pub num_classes: i64,
    /// Input channels (3 for RGB).
    pub in_channels: i64,
    /// Side of the square input in pixels.
    pub input_size: i64,
    /// Dropout probability, for architectures that have dropout.
    pub dropout: f64,
    /// Stochastic-depth rate (last block), for architectures that have it.
    pub drop_path: f64,
    /// The searchable family's architecture (`searchnet`); other models ignore it.
    #[serde(default)]
    pub arch: searchnet::Arch,
}

impl Default for ModelArgs {
    fn default() -> Self {
        ModelArgs {
            num_classes: 10,
            in_channels: 3,
            input_size: 32,
            dropout: 0.5,
            drop_path: 0.0,
            arch: searchnet::Arch::default(),
        }
    }
}

/// A network: its forward pass and, for the deep models, the chain of segments that gradient
/// checkpointing recomputes. Running the segments in order is the forward pass.
pub trait Network: ModuleT {
    /// The network as consecutive segments (`None`: no gradient checkpointing for this model).
    fn segments(&self) -> Option<Vec<&dyn ModuleT>> {
        None
    }

    /// Data-dependent initialisation from normalised training images `(N, C, H, W)` (airbench's
    /// patch whitening); run once by the trainer before the first step. Default: nothing.
    fn init_from_data(&self, _images: &Tensor) {}

    /// Parameters (state_dict names) that train only during the first `n` epochs and are frozen
    /// from then on. Default: none.
    fn trained_for_epochs(&self) -> Vec<(String, i64)> {
        Vec::new()
    }

    /// The tap point class activation maps use by default (see [`context::tap`]). Default
    /// (`None`): the last [`context::TapKind::Block`] point of a forward pass, i.e. the last
    /// convolutional block.
    fn cam_layer(&self) -> Option<String> {
        None
    }
}

/// Millions of FLOPs of `macs` multiply-accumulates (one multiply and one add each).
pub fn mflops(macs: u64) -> f64 {
    2.0 * macs as f64 / 1e6
}

/// The segments `first, blocks..., last` (stem, residual blocks, head).
pub fn chain<'a, B: ModuleT>(first: &'a dyn ModuleT, blocks: &'a [B], last: &'a dyn ModuleT) -> Vec<&'a dyn ModuleT> {
    let mut s: Vec<&dyn ModuleT> = vec![first];
    s.extend(blocks.iter().map(|b| b as &dyn ModuleT));
    s.push(last);
    s
}

/// Runs segments one after the other: the forward pass of a segmented network.
pub fn run_segments(segments: &[&dyn ModuleT], x: &Tensor, train: bool) -> Tensor {
    segments.iter().fold(x.shallow_clone(), |x, s| s.forward_t(&x, train))
}

/// A registered architecture.
pub struct ModelEntry {
    /// Config name.
    pub name: &'static str,
    /// Registers the parameters under a path and returns the network.
    pub build: fn(&Path, &ModelArgs) -> Box<dyn Network>,
    /// One line for `microvision models`.
    pub about: &'static str,
}

/// The registry: name -> constructor. A model is tested by being listed here.
pub const MODELS: &[ModelEntry] = &[
    ModelEntry { name: "simple_cnn", build: simple_cnn::build, about: "3 conv blocks + MLP head (foundation spec)" },
    ModelEntry { name: "improved_cnn", build: improved_cnn::build, about: "VGG-style 7 convs, global max-pool" },
    ModelEntry { name: "resnet18", build: resnet::resnet18, about: "He et al. 2016, CIFAR stem" },
    ModelEntry { name: "resnet34", build: resnet::resnet34, about: "He et al. 2016, CIFAR stem" },
    ModelEntry {
        name: "efficientnet_b0",
        build: efficientnet::efficientnet_b0,
        about: "Tan & Le 2019, total stride 8 for 32x32",
    },
    ModelEntry {
        name: "airbench94",
        build: airbench::airbench94,
        about: "Jordan 2024 (airbench94), whitened 2x2 stem",
    },
    ModelEntry { name: "vgg11", build: vgg::vgg11, about: "Simonyan & Zisserman 2015, with BN" },
    ModelEntry { name: "vgg13", build: vgg::vgg13, about: "Simonyan & Zisserman 2015, with BN" },
    ModelEntry { name: "vgg16", build: vgg::vgg16, about: "Simonyan & Zisserman 2015, with BN" },
    ModelEntry { name: "vgg19", build: vgg::vgg19, about: "Simonyan & Zisserman 2015, with BN" },
    ModelEntry {
        name: "searchnet",
        build: searchnet::searchnet,
        about: "searchable family: per-stage width and depth, block type, kernel ([model.arch])",
    },
    ModelEntry {
        name: "vit_lite7",
        build: vit::vit_lite7,
        about: "Hassani et al. 2021 ViT-Lite-7/4, explicit attention",
    },
];

/// Looks an architecture up; an unknown name lists the valid ones.
pub fn lookup(name: &str) -> Result<&'static ModelEntry> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        config_err!("unknown model {name:?}; valid models: {}", names.join(", "))
    })
}

/// The lock around LibTorch's process-global initialisation generator.
fn init_lock() -> std::sync::MutexGuard<'static, ()> {
    static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    INIT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A built network with its parameters.
pub struct Model {
    /// Owns the parameters and buffers (PyTorch `state_dict` names).
    pub vs: VarStore,
    /// The network.
    pub net: Box<dyn Network>,
    /// Registry name.
    pub name: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.name).field("params", &self.num_params()).finish_non_exhaustive()
    }
}

impl Model {
    /// Builds `name` on `device`, initialised from LibTorch's global generator. Construction
    /// holds the same lock as [`Model::new_seeded`], so it never draws from the generator between
    /// another thread's seeding and its initialisation.
    pub fn new(name: &str, args: &ModelArgs, device: Device) -> Result<Model> {
        let _guard = init_lock();
        Model::build(name, args, device)
    }

    /// Builds `name` initialised from `seed`. LibTorch's initialisation generator is
    /// process-global, so seeding and building happen under one lock: concurrent builds in other
    /// threads cannot interleave and change this model's initial weights.
    pub fn new_seeded(name: &str, args: &ModelArgs, device: Device, seed: u64) -> Result<Model> {
        let _guard = init_lock();
        tch::manual_seed(seed as i64 & i64::MAX);
        Model::build(name, args, device)
    }

    fn build(name: &str, args: &ModelArgs, device: Device) -> Result<Model> {
        let entry = lookup(name)?;
        let vs = VarStore::new(device);
        let net = (entry.build)(&vs.root(), args);
        Ok(Model { vs, net, name: name.to_string() })
    }

    /// Lays the 4-d (conv) weights out channels-last, as `model.to(memory_format=channels_last)`
    /// does: oneDNN then needs no per-step layout conversion of the weights (measured 1.3-2x
    /// faster bf16 convs on this CPU). Values, names and shapes are unchanged; checkpoints store
    /// them contiguous.
    pub fn to_channels_last(&mut self) {
        tch::no_grad(|| {
            for (_, mut var) in self.vs.variables() {
                if var.dim() == 4 {
                    let cl = crate::device::channels_last(&var);
                    var.set_data(&cl);
                }
            }
        });
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> i64 {
        self.vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
    }

    /// Forward pass.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(x, train)
    }

    /// The conv, linear and batch-norm layers of a forward pass of one image, in call order,
    /// with output shapes and parameters (the model summary).
    pub fn summary(&self, args: &ModelArgs) -> Vec<context::LayerRecord> {
        let x = Tensor::zeros([1, args.in_channels, args.input_size, args.input_size], (Kind::Float, self.vs.device()));
        context::trace_layers(|| {
            let _no_grad = tch::no_grad_guard(); // unwind-safe, unlike tch::no_grad (see macs_per_image)
            let _ = self.net.forward_t(&x, false);
        })
    }

    /// Millions of FLOPs for one image: 2 x its multiply-accumulates.
    pub fn mflops_per_image(&self, args: &ModelArgs) -> f64 {
        mflops(self.macs_per_image(args))
    }

    /// Multiply-accumulates for one image (conv and linear layers), via a counted forward pass.
    pub fn macs_per_image(&self, args: &ModelArgs) -> u64 {
        let x = Tensor::zeros([1, args.in_channels, args.input_size, args.input_size], (Kind::Float, self.vs.device()));
        context::count_macs(|| {
            // A guard, not `tch::no_grad`: a shape probe that fails unwinds through here, and
            // `tch::no_grad` would then leave autograd off for the rest of the thread (the next
            // training in a notebook's process would have no gradients).
            let _no_grad = tch::no_grad_guard();
            let _ = self.net.forward_t(&x, false);
        })
    }
}
