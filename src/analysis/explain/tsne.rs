//! A 2-D t-SNE of embeddings (van der Maaten 2014, Barnes-Hut) through the `bhtsne` crate, made
//! reproducible: the neighbours come from an exact k-nearest-neighbour search here, the start is
//! the PCA projection scaled as scikit-learn's `init="pca"` (no random draw), and the crate runs
//! in a one-thread pool, whose sums then add in a fixed order.

use bhtsne::{tSNE, Neighbor};
use tch::{Device, Kind, Tensor};

use crate::config_err;
use crate::error::{Error, Result};

/// t-SNE settings (scikit-learn's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneParams {
    /// Effective number of neighbours; needs at least `3 * perplexity + 1` points.
    pub perplexity: f64,
    /// Barnes-Hut accuracy (0.5; larger is faster and coarser).
    pub theta: f64,
    /// Gradient steps.
    pub iterations: usize,
}

impl Default for TsneParams {
    fn default() -> Self {
        TsneParams { perplexity: 30.0, theta: 0.5, iterations: 1000 }
    }
}

/// The `k` nearest neighbours of every row of `x` `(N, D)` (itself excluded), nearest first, by
/// Euclidean distance; computed in blocks of rows on `x`'s device.
pub fn nearest_neighbours(x: &Tensor, k: usize) -> Vec<Vec<Neighbor<f64>>> {
    let x = x.to_kind(Kind::Double);
    let n = x.size()[0];
    let k = (k as i64).min(n - 1);
    let sq = (&x * &x).sum_dim_intlist([1i64].as_slice(), false, Kind::Double); // (N,)
    let mut out = Vec::with_capacity(n as usize);
    for start in (0..n).step_by(1024) {
        let rows = x.narrow(0, start, 1024.min(n - start));
        let rsq = sq.narrow(0, start, rows.size()[0]).unsqueeze(1);
        let d2 = (rsq + sq.unsqueeze(0) - rows.matmul(&x.tr()) * 2.0).clamp_min(0.0); // (R, N)
        let own = Tensor::arange_start(start, start + rows.size()[0], (Kind::Int64, x.device()));
        let d2 = d2.scatter_value(1, &own.unsqueeze(1), f64::INFINITY);
        let (dist, idx) = d2.topk(k, 1, false, true);
        let (dist, idx) = (dist.sqrt().to_device(Device::Cpu), idx.to_device(Device::Cpu));
        let (dist, idx) = (Vec::<f64>::try_from(dist.flatten(0, -1)), Vec::<i64>::try_from(idx.flatten(0, -1)));
        let (dist, idx) = (dist.unwrap_or_default(), idx.unwrap_or_default());
        for (ds, is) in dist.chunks(k as usize).zip(idx.chunks(k as usize)) {
            out.push(is.iter().zip(ds).map(|(&i, &d)| Neighbor { index: i as usize, distance: d }).collect());
        }
    }
    out
}

/// The first two principal components of `x` `(N, D)`, scaled so the first has standard
/// deviation 1e-4 (scikit-learn's PCA start), as row-major `N x 2` values.
pub fn pca_start(x: &Tensor) -> Vec<f64> {
    let x = x.to_device(Device::Cpu).to_kind(Kind::Double);
    let centred = &x - x.mean_dim([0i64].as_slice(), true, Kind::Double);
    let (_, _, v) = centred.svd(true, true); // v: (D, D), the right singular vectors as columns
    let proj = centred.matmul(&v.narrow(1, 0, 2)); // (N, 2)
    let std = proj.select(1, 0).std(true).double_value(&[]).max(1e-12);
    Vec::<f64>::try_from((proj / std * 1e-4).flatten(0, -1)).unwrap_or_default()
}

/// The 2-D t-SNE of `x` `(N, D)`: `(N, 2)` fp32 on the CPU. The same input gives the same
/// embedding bit for bit.
pub fn tsne(x: &Tensor, p: &TsneParams) -> Result<Tensor> {
    let n = x.size()[0] as usize;
    check(n, p)?;
    let neighbours = nearest_neighbours(x, (3.0 * p.perplexity) as usize);
    let start = pca_start(x);
    let ids: Vec<usize> = (0..n).collect();
    let y = one_thread(|| {
        let mut t: tSNE<f64, usize> = tSNE::new(&ids);
        t.perplexity(p.perplexity).epochs(p.iterations).initial_embedding(start);
        t.barnes_hut_with_neighbors(p.theta, &neighbours);
        t.embedding()
    })?;
    Ok(Tensor::from_slice(&y).view([n as i64, 2]).to_kind(Kind::Float))
}

/// The symmetric affinities `P` t-SNE fits (before early exaggeration), as `(row, column, p)`
/// triples: what scikit-learn's `_joint_probabilities_nn` computes from the same neighbours.
pub fn affinities(x: &Tensor, perplexity: f64) -> Result<Vec<(usize, usize, f64)>> {
    let n = x.size()[0] as usize;
    check(n, &TsneParams { perplexity, ..TsneParams::default() })?;
    let neighbours = nearest_neighbours(x, (3.0 * perplexity) as usize);
    let ids: Vec<usize> = (0..n).collect();
    let aff = one_thread(|| {
        let mut t: tSNE<f64, usize> = tSNE::new(&ids);
        t.perplexity(perplexity).epochs(0).initial_embedding(vec![0.0; 2 * n]);
        t.barnes_hut_with_neighbors(0.5, &neighbours);
        t.affinities()
    })?
    .ok_or_else(|| Error::Runtime("t-SNE computed no affinities".into()))?;
    let mut out = Vec::new();
    for (i, w) in aff.rows().windows(2).enumerate() {
        for j in w[0]..w[1] {
            out.push((i, aff.columns()[j] as usize, aff.values()[j]));
        }
    }
    Ok(out)
}

/// Leave-one-out accuracy of a `k`-nearest-neighbour vote in `x` `(N, D)`: how well the space
/// keeps the classes apart (ties go to the smallest label, as scikit-learn's vote).
pub fn knn_accuracy(x: &Tensor, labels: &[i64], k: usize) -> f64 {
    let neighbours = nearest_neighbours(x, k);
    let classes = labels.iter().copied().max().unwrap_or(0) as usize + 1;
    let right = neighbours
        .iter()
        .zip(labels)
        .filter(|(nb, &label)| {
            let mut votes = vec![0usize; classes];
            nb.iter().for_each(|n| votes[labels[n.index] as usize] += 1);
            let best = votes.iter().enumerate().max_by_key(|(c, v)| (**v, std::cmp::Reverse(*c))).map(|(c, _)| c);
            best == Some(label as usize)
        })
        .count();
    right as f64 / labels.len().max(1) as f64
}

fn check(n: usize, p: &TsneParams) -> Result<()> {
    let need = (3.0 * p.perplexity).floor() as usize + 1;
    if !p.perplexity.is_finite() || p.perplexity <= 0.0 || n < need {
        return Err(config_err!(
            "t-SNE of {n} points with perplexity {}: needs at least 3 x perplexity + 1 = {need} points (lower --perplexity or use more images)",
            p.perplexity
        ));
    }
    if !p.theta.is_finite() || p.theta <= 0.0 {
        return Err(config_err!("t-SNE theta {}: expected a number above 0", p.theta));
    }
    Ok(())
}

/// Runs `f` in a one-thread rayon pool: bhtsne's parallel sums then add in one fixed order.
fn one_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the t-SNE thread: {e}")))?;
    Ok(pool.install(f))
}
