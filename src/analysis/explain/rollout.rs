//! Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020,
//! section 3): how much each input patch reaches the class token through all the layers.

use tch::{Kind, Tensor};

use crate::config_err;
use crate::error::Result;

/// Rollout maps `(B, g, g)` from the attention probabilities of each layer, first to last
/// (`(B, heads, N, N)`, `N = 1 + g*g` with the class token first). Heads are averaged; each
/// layer's residual connection is accounted for as `0.5 A + 0.5 I` (rows renormalised); the
/// layers multiply, `R = A_L ... A_1`; the map is the class token's row of `R` over the patches.
pub fn rollout(attentions: &[Tensor]) -> Result<Tensor> {
    let first =
        attentions.first().ok_or_else(|| config_err!("attention rollout needs a model with attention layers"))?;
    let (b, n) = (first.size()[0], first.size()[2]);
    let g = ((n - 1) as f64).sqrt().round() as i64;
    if g * g != n - 1 {
        return Err(config_err!("{n} tokens: expected a class token and a square grid of patches"));
    }
    let eye = Tensor::eye(n, (Kind::Float, first.device()));
    let mut r = eye.expand([b, n, n], false).copy();
    for a in attentions {
        let a = a.to_kind(Kind::Float).mean_dim([1i64].as_slice(), false, Kind::Float) * 0.5 + &eye * 0.5;
        let a = &a / a.sum_dim_intlist([-1i64].as_slice(), true, Kind::Float);
        r = a.matmul(&r);
    }
    Ok(r.select(1, 0).narrow(1, 1, n - 1).reshape([b, g, g]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn uniform_attention_spreads_evenly_and_identity_keeps_the_class_token() {
        // Uniform attention over 5 tokens (a 2x2 grid): every patch gets the same share.
        let uniform = Tensor::full([1, 2, 5, 5], 0.2, (Kind::Float, Device::Cpu));
        let m = rollout(&[uniform.shallow_clone(), uniform]).unwrap();
        let v = Vec::<f32>::try_from(m.flatten(0, -1)).unwrap();
        assert!(v.iter().all(|x| (x - v[0]).abs() < 1e-6) && v[0] > 0.0, "{v:?}");
        // Attention to self only: the class token never sees a patch.
        let own = Tensor::eye(5, (Kind::Float, Device::Cpu)).view([1, 1, 5, 5]);
        assert_eq!(rollout(&[own]).unwrap().abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn one_layer_is_half_its_attention() {
        // The class token attends only to patch 3: rollout = 0.5 * that row.
        let mut a = vec![0.0f32; 25];
        a[3] = 1.0;
        for i in 1..5 {
            a[i * 5 + i] = 1.0;
        }
        let m = rollout(&[Tensor::from_slice(&a).view([1, 1, 5, 5])]).unwrap();
        assert_eq!(Vec::<f32>::try_from(m.flatten(0, -1)).unwrap(), [0.0, 0.0, 0.5, 0.0]);
    }
}
