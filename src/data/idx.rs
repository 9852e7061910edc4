//! The IDX format of MNIST, Fashion-MNIST and Kuzushiji-MNIST (LeCun et al.): a big-endian header
//! (two zero bytes, a type byte 0x08 = unsigned byte, the number of dimensions, then each
//! dimension as u32) followed by the data. Files may be gzip-compressed (`*.gz`, as published)
//! or raw. Official files and MD5s as listed by torchvision 0.26 (`datasets/mnist.py`).

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::Tensor;

use super::Dataset;
use crate::data_err;
use crate::error::Result;

/// A dataset in the MNIST layout: four IDX files, 28x28 grey images, 10 classes.
#[derive(Debug, Clone, Copy)]
pub struct IdxSpec {
    /// Config name.
    pub name: &'static str,
    /// Directory name inside `data.root`.
    pub dir: &'static str,
    /// Download location (the files are appended).
    pub url: &'static str,
    /// `(train images, train labels, test images, test labels)` with the MD5 of each `.gz`.
    pub files: [(&'static str, &'static str); 4],
    /// Class names in label order.
    pub classes: [&'static str; 10],
}

/// The MNIST family.
pub const IDX_DATASETS: [IdxSpec; 3] = [
    IdxSpec {
        name: "mnist",
        dir: "MNIST",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/",
        files: [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ],
        classes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    },
    IdxSpec {
        name: "fashion_mnist",
        dir: "FashionMNIST",
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files: [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ],
        classes: [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    },
    IdxSpec {
        name: "kmnist",
        dir: "KMNIST",
        url: "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        files: [
            ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
            ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
            ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
            ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
        ],
        classes: ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    },
];

/// Looks an IDX dataset up by config name.
pub fn spec(name: &str) -> Option<&'static IdxSpec> {
    IDX_DATASETS.iter().find(|s| s.name == name)
}

/// Side of the MNIST family's square images.
pub const IMAGE_SIDE: usize = 28;

/// Parses an IDX file's bytes: checks the magic and that the data length matches the header.
/// Returns the dimensions and the data.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |what: String| data_err!("{}: not an IDX file of unsigned bytes: {what}", path.display());
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("the first two bytes must be 0 (big-endian IDX magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!("type byte 0x{:02x}, expected 0x08 (unsigned byte)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(bad(format!("{ndim} dimensions with a {}-byte file", bytes.len())));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(data_err!(
            "{}: the header says {dims:?} = {expected} bytes of data, the file has {} (truncated or corrupt)",
            path.display(),
            data.len()
        ));
    }
    Ok((dims, data.to_vec()))
}

/// The file `read` takes for `name`: `dir/name` when it exists, else the raw one without `.gz`.
fn path_of(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(name);
    if gz.is_file() {
        gz
    } else {
        dir.join(name.trim_end_matches(".gz"))
    }
}

/// Reads `name` from `dir`, gzip-compressed (`name`) or raw (`name` without `.gz`).
pub fn read(dir: &Path, name: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let path = path_of(dir, name);
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let file = std::fs::File::open(&path).map_err(|e| data_err!("cannot open {}: {e}", path.display()))?;
        let mut out = Vec::new();
        GzDecoder::new(file)
            .read_to_end(&mut out)
            .map_err(|e| data_err!("{}: not a valid gzip file: {e}", path.display()))?;
        out
    } else {
        std::fs::read(&path).map_err(|e| data_err!("cannot read {}: {e}", path.display()))?
    };
    parse(&bytes, &path)
}

impl IdxSpec {
    /// The directory holding the files: `root/<dir>`, `root/<dir>/raw` or `root` itself.
    pub fn locate(&self, root: &Path) -> Option<PathBuf> {
        let first = self.files[0].0;
        [root.join(self.dir), root.join(self.dir).join("raw"), root.to_path_buf()]
            .into_iter()
            .find(|d| d.join(first).is_file() || d.join(first.trim_end_matches(".gz")).is_file())
    }

    /// Reads the training (`train = true`) or test split: `(N, 1, H, W)` uint8 images.
    pub fn read_split(&self, dir: &Path, train: bool) -> Result<Dataset> {
        let (img, lab) = if train { (self.files[0].0, self.files[1].0) } else { (self.files[2].0, self.files[3].0) };
        let (dims, pixels) = read(dir, img)?;
        let (ldims, labels) = read(dir, lab)?;
        if dims.len() != 3 || ldims.len() != 1 || dims[0] != ldims[0] {
            return Err(data_err!(
                "{}: images {dims:?} and labels {ldims:?} do not match (expected [N, H, W] and [N])",
                dir.display()
            ));
        }
        if dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
            // Models and transforms are sized from the dataset name, before any file is read.
            return Err(data_err!(
                "{}: the images are {}x{}; {} images are {IMAGE_SIDE}x{IMAGE_SIDE}",
                path_of(dir, img).display(),
                dims[1],
                dims[2],
                self.name
            ));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= self.classes.len()) {
            return Err(data_err!(
                "{}: label {bad} out of range 0..{}",
                path_of(dir, lab).display(),
                self.classes.len()
            ));
        }
        let images = Tensor::from_slice(&pixels).view([dims[0] as i64, 1, dims[1] as i64, dims[2] as i64]);
        let labels: Vec<i64> = labels.into_iter().map(i64::from).collect();
        let classes = self.classes.iter().map(|s| s.to_string()).collect();
        Ok(Dataset { images, labels: Tensor::from_slice(&labels), classes })
    }

    /// MD5 of each data file present in `dir` (the `.gz` file, or the raw one when only it is
    /// there), for provenance and verification.
    pub fn md5s(&self, dir: &Path) -> Result<Vec<(String, String)>> {
        self.present_files(dir).into_iter().map(|f| Ok((f.clone(), super::cifar::md5_file(&dir.join(&f))?))).collect()
    }

    /// Each of the four files as present in `dir`: the `.gz` file, else the raw one.
    pub fn present_files(&self, dir: &Path) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|(name, _)| {
                [*name, name.trim_end_matches(".gz")].into_iter().find(|f| dir.join(f).is_file()).map(String::from)
            })
            .collect()
    }
}
