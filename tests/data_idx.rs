//! The MNIST family (IDX files, gzip or raw): header checks, corrupt and truncated files, and
//! an end-to-end training on a synthetic Fashion-MNIST with statistics computed from the data.

mod common;

use std::io::Write;
use std::path::Path;

use microvision::data::idx;
use microvision::train::Trainer;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
    b.extend_from_slice(data);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes the four files of a synthetic set into `dir` (gzip when `gz`): images whose mean
/// brightness depends on the label, so a short training learns something.
fn write_set(dir: &Path, n_train: usize, n_test: usize, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let (name, bytes) =
            if gz { (name.to_string(), gzip(&bytes)) } else { (name.trim_end_matches(".gz").to_string(), bytes) };
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = (0..n * 784).map(|i| ((i * 31) % 97) as u8 + labels[i / 784] * 15).collect();
        write(&format!("{prefix}-images-idx3-ubyte.gz"), idx_bytes(&[n as u32, 28, 28], &pixels));
        write(&format!("{prefix}-labels-idx1-ubyte.gz"), idx_bytes(&[n as u32], &labels));
    }
}

#[test]
fn headers_are_checked_and_errors_name_the_file() {
    let p = Path::new("x-idx3-ubyte");
    let (dims, data) = idx::parse(&idx_bytes(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), p).unwrap();
    assert_eq!((dims, data.len()), (vec![2, 2, 3], 12));
    let e = idx::parse(&[1, 0, 8, 1, 0, 0, 0, 0], p).unwrap_err().to_string();
    assert!(e.contains("x-idx3-ubyte") && e.contains("magic"), "{e}");
    let e = idx::parse(
        &idx_bytes(&[2], &[1, 2])[..]
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 2 { 0x0d } else { *b })
            .collect::<Vec<_>>(),
        p,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("0x0d") && e.contains("unsigned byte"), "{e}");
    let e = idx::parse(&idx_bytes(&[3, 2, 2], &[0; 10]), p).unwrap_err().to_string();
    assert!(e.contains("12 bytes") && e.contains("has 10") && e.contains("truncated"), "{e}");
}

#[test]
fn gzip_and_raw_files_read_the_same_and_corrupt_gzip_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = idx::spec("fashion_mnist").unwrap();
    write_set(&tmp.path().join("a/FashionMNIST"), 20, 10, true);
    write_set(&tmp.path().join("b/FashionMNIST/raw"), 20, 10, false);
    let a = spec.read_split(&spec.locate(&tmp.path().join("a")).unwrap(), true).unwrap();
    let b = spec.read_split(&spec.locate(&tmp.path().join("b")).unwrap(), true).unwrap();
    assert!(a.images.equal(&b.images) && a.labels.equal(&b.labels));
    assert_eq!(a.images.size(), [20, 1, 28, 28]);
    assert_eq!(a.classes[9], "Ankle boot");
    let dir = tmp.path().join("a/FashionMNIST");
    let gz = std::fs::read(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &gz[..gz.len() / 2]).unwrap();
    let e = spec.read_split(&dir, false).unwrap_err().to_string();
    assert!(e.contains("t10k-images-idx3-ubyte.gz"), "{e}");
    let src = microvision::data::source::source("fashion_mnist").unwrap();
    assert!(src.verify(&dir).unwrap_err().to_string().contains("MD5"), "synthetic files are not the official ones");
    // Raw files have no official MD5: hashed for provenance, never verified.
    let raw = spec.locate(&tmp.path().join("b")).unwrap();
    let sums = src.verify(&raw).unwrap();
    assert_eq!((sums.len(), src.officially_checked(&sums)), (4, 0));
}

#[test]
fn empty_and_wrongly_sized_splits_are_errors_that_name_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("FashionMNIST");
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs")).data;
    (cfg.dataset, cfg.input_size) = ("fashion_mnist".into(), 28);
    let err = |cfg: &microvision::config::DataConfig| microvision::data::load(cfg, 0).unwrap_err().to_string();

    write_set(&dir, 20, 0, false); // no test images: a run would report 0% on nothing
    let e = err(&cfg);
    assert!(e.contains("the test split has no images"), "{e}");

    write_set(&dir, 20, 10, false);
    cfg.val_split = 0.01; // 0.2 of an image
    let e = err(&cfg);
    assert!(e.contains("`data.val_split` = 0.01") && e.contains("holds out 0 of the 20"), "{e}");

    cfg.val_split = 0.0;
    let pixels = vec![7u8; 10 * 32 * 32];
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_bytes(&[10, 32, 32], &pixels)).unwrap();
    let e = err(&cfg);
    assert!(e.contains("t10k-images-idx3-ubyte") && e.contains("32x32") && e.contains("28x28"), "{e}");
}

#[test]
fn fashion_mnist_trains_end_to_end_with_computed_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    write_set(&tmp.path().join("FashionMNIST"), 200, 50, true);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.data.dataset = "fashion_mnist".into();
    cfg.data.input_size = 28;
    cfg.data.hflip = false;
    let mut t = Trainer::new(cfg.clone()).unwrap();
    let test = microvision::lab::fit(&mut t).unwrap().test;
    assert!(test.acc.is_finite());
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.run_dir.join("env.json")).unwrap()).unwrap();
    let (mean, std) = (env["norm_mean"].as_array().unwrap(), env["norm_std"].as_array().unwrap());
    assert_eq!((mean.len(), std.len()), (1, 1), "one grey channel");
    let data = microvision::data::load(&cfg.data, 0).unwrap();
    let (m, s) = data.train.mean_std();
    assert!((mean[0].as_f64().unwrap() - m[0]).abs() < 1e-12 && (std[0].as_f64().unwrap() - s[0]).abs() < 1e-12);
    assert!(t.run_dir.join("plots/predictions.png").exists(), "grey images in the prediction grid");

    // A model whose downsampling does not fit 28x28, and colour operations on grey images.
    cfg.model.name = "vgg11".into();
    let e = Trainer::new(cfg.clone()).err().unwrap().to_string();
    assert!(e.contains("vgg11") && e.contains("1x28x28"), "{e}");
    let e = microvision::Config::from_toml_str(
        "[data]\ndataset = \"mnist\"\ninput_size = 28\n[augment]\npolicy = \"autoaugment\"\n",
        "t",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("greyscale") && e.contains("augment.policy"), "{e}");
}
