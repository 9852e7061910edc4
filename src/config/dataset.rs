//! The facts about each dataset that a config is checked against when it is loaded: its name,
//! image channels, image side and class count. The readers in `data` follow them (and a test
//! checks that they agree with the readers' file specs), so `config` needs nothing from `data`.

/// Dataset names `data.dataset` accepts.
pub const DATASETS: &[&str] = &["cifar10", "cifar100", "mnist", "fashion_mnist", "kmnist", "image_folder"];

/// What a config must match about a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetFacts {
    /// Image channels (3 for colour, 1 for the MNIST family).
    pub channels: i64,
    /// Side of the square images; `None` for an image folder, whose images are resized to
    /// `data.input_size`.
    pub image_side: Option<i64>,
    /// Number of classes; `None` for an image folder, whose class directories tell.
    pub num_classes: Option<i64>,
}

impl DatasetFacts {
    /// The image side a run of this dataset trains at: the dataset's, or `input_size` for an
    /// image folder.
    pub fn image_size(&self, input_size: i64) -> i64 {
        self.image_side.unwrap_or(input_size)
    }
}

/// The facts of dataset `name`; `None` for a name not in [`DATASETS`].
pub fn dataset_facts(name: &str) -> Option<DatasetFacts> {
    let (channels, image_side, num_classes) = match name {
        "cifar10" => (3, Some(32), Some(10)),
        "cifar100" => (3, Some(32), Some(100)),
        "mnist" | "fashion_mnist" | "kmnist" => (1, Some(28), Some(10)),
        "image_folder" => (3, None, None),
        _ => return None,
    };
    Some(DatasetFacts { channels, image_side, num_classes })
}
