//! The t-SNE of the embeddings against scikit-learn (tests/oracle/check_tsne.py): the same
//! affinities from the same neighbours, an embedding as trustworthy and as class-separating as
//! scikit-learn's within a stated margin, and the same embedding bit for bit on a second run.

mod common;

use microvision::analysis::explain::tsne::{affinities, knn_accuracy, tsne, TsneParams};
use tch::{Device, Kind, Tensor};

/// 600 points in 30-D around six class centres, overlapping enough that the embedding matters.
fn clusters() -> (Tensor, Vec<i64>) {
    tch::manual_seed(4);
    let labels: Vec<i64> = (0..600).map(|i| i % 6).collect();
    let centres = Tensor::randn([6, 30], (Kind::Float, Device::Cpu)) * 0.45;
    let x =
        centres.index_select(0, &Tensor::from_slice(&labels)) + Tensor::randn([600, 30], (Kind::Float, Device::Cpu));
    (x, labels)
}

#[test]
fn tsne_is_reproducible_bit_for_bit() {
    let (x, _) = clusters();
    let p = TsneParams { iterations: 300, ..TsneParams::default() };
    assert!(tsne(&x, &p).unwrap().equal(&tsne(&x, &p).unwrap()), "the same points give the same embedding");
}

#[test]
fn too_few_points_for_the_perplexity_is_a_clear_error() {
    let x = Tensor::randn([50, 4], (Kind::Float, Device::Cpu));
    let err = tsne(&x, &TsneParams::default()).unwrap_err().to_string();
    assert!(err.contains("50 points") && err.contains("perplexity 30") && err.contains("91"), "{err}");
}

#[test]
fn tsne_matches_scikit_learn() {
    let Some(py) = common::venv_python() else {
        return;
    };
    let (x, labels) = clusters();
    let perplexity = 30.0;
    let p = affinities(&x, perplexity).unwrap();
    let rows: Vec<i64> = p.iter().map(|t| t.0 as i64).collect();
    let cols: Vec<i64> = p.iter().map(|t| t.1 as i64).collect();
    let vals: Vec<f64> = p.iter().map(|t| t.2).collect();
    let y = tsne(&x, &TsneParams { perplexity, ..TsneParams::default() }).unwrap();
    let knn = knn_accuracy(&y, &labels, 5);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.safetensors");
    let t = |v: &[i64]| Tensor::from_slice(v);
    Tensor::write_safetensors(
        &[
            ("x", &x),
            ("labels", &t(&labels)),
            ("p_rows", &t(&rows)),
            ("p_cols", &t(&cols)),
            ("p_vals", &Tensor::from_slice(&vals)),
            ("y", &y),
            ("knn", &Tensor::from(knn)),
        ],
        &file,
    )
    .unwrap();
    let o = std::process::Command::new(&py)
        .arg(common::repo("tests/oracle/check_tsne.py"))
        .arg(&file)
        .arg(perplexity.to_string())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    eprintln!("{text}");
    assert!(o.status.success(), "t-SNE against scikit-learn:\n{text}");
}
