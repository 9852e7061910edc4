//! The math of class activation maps, on tensors already captured: pure functions of a layer's
//! activations `A (B, K, h, w)` and the gradients `G` of the class scores with respect to them.
//! Formulas as pytorch-grad-cam 1.5 computes them (the oracle in `tests/explain.rs`).

use tch::{Kind, Tensor};

use crate::config_err;
use crate::error::Result;

/// A layer's output as a `(B, K, h, w)` map: conv outputs as they are; a transformer's tokens
/// `(B, 1 + g*g, D)` without the class token, laid out on their `g x g` patch grid (pytorch-grad-cam's
/// `reshape_transform` for ViTs).
pub fn to_grid(t: &Tensor) -> Result<Tensor> {
    match t.size().as_slice() {
        [_, _, _, _] => Ok(t.shallow_clone()),
        &[b, n, d] => {
            let g = ((n - 1) as f64).sqrt().round() as i64;
            if g * g != n - 1 {
                return Err(config_err!(
                    "a layer with {n} tokens: expected a class token and a square grid of patches"
                ));
            }
            Ok(t.narrow(1, 1, n - 1).reshape([b, g, g, d]).permute([0, 3, 1, 2]))
        }
        s => Err(config_err!("a layer output of shape {s:?}: expected (B, C, H, W) maps or (B, tokens, D)")),
    }
}

/// Grad-CAM (Selvaraju et al. 2017, eq. 1-2): `ReLU(sum_k w_k A_k)` with `w_k` the spatial mean
/// of `G_k`. Returns `(B, h, w)`.
pub fn grad_cam(acts: &Tensor, grads: &Tensor) -> Tensor {
    let weights = grads.mean_dim([2i64, 3].as_slice(), true, Kind::Float); // (B, K, 1, 1)
    weighted_sum(acts, &weights)
}

/// Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19, with exp(score) so that the higher derivatives
/// are powers of `G`): `w_k = sum_ij relu(G_kij) a_kij`, `a_kij = G^2 / (2 G^2 + sum(A_k) G^3)`,
/// zero where `G` is. Returns `(B, h, w)`.
pub fn grad_cam_pp(acts: &Tensor, grads: &Tensor) -> Tensor {
    let g2 = grads * grads;
    let g3 = &g2 * grads;
    let sum_a = acts.sum_dim_intlist([2i64, 3].as_slice(), true, Kind::Float); // (B, K, 1, 1)
    let aij = &g2 / (&g2 * 2.0 + sum_a * g3 + 1e-6);
    let aij = aij.where_self(&grads.ne(0.0), &aij.zeros_like());
    let weights = (grads.relu() * aij).sum_dim_intlist([2i64, 3].as_slice(), true, Kind::Float);
    weighted_sum(acts, &weights)
}

/// Score-CAM's channel weights from the scores of the masked inputs `(B, K)`: a softmax over the
/// channels (Wang et al. 2020 use the softmax of each masked input's class scores; pytorch-grad-cam,
/// and this, the class logits). The map is then [`weighted_sum`]`(A, w)`.
pub fn score_cam_weights(scores: &Tensor) -> Tensor {
    let k = scores.size()[1];
    scores.softmax(1, Kind::Float).view([-1, k, 1, 1])
}

/// `ReLU(sum_k w_k A_k)`, `(B, h, w)`, for weights `(B, K, 1, 1)`.
pub fn weighted_sum(acts: &Tensor, weights: &Tensor) -> Tensor {
    (acts * weights).sum_dim_intlist([1i64].as_slice(), false, Kind::Float).relu()
}

/// Score-CAM's masks: each channel of `A (B, K, h, w)` upsampled to the input's `size x size`
/// (bilinear, corners aligned, as `nn.UpsamplingBilinear2d`) and scaled to [0, 1] per channel.
/// Returns `(B, K, size, size)`.
pub fn score_cam_masks(acts: &Tensor, size: [i64; 2]) -> Tensor {
    let up = acts.upsample_bilinear2d(size, true, None, None);
    let flat = up.flatten(2, -1);
    let (max, min) = (flat.amax([2i64].as_slice(), true), flat.amin([2i64].as_slice(), true));
    let (max, min) = (max.unsqueeze(-1), min.unsqueeze(-1));
    (&up - &min) / (max - min + 1e-8)
}

/// Each map of `(B, h, w)` shifted and scaled to [0, 1] (`(m - min) / (max - min + 1e-7)`, as
/// pytorch-grad-cam's `scale_cam_image`), a constant map to zeros.
pub fn normalise(maps: &Tensor) -> Tensor {
    let flat = maps.flatten(1, -1);
    let min = flat.amin([1i64].as_slice(), true).unsqueeze(-1);
    let shifted = maps - min;
    let max = shifted.flatten(1, -1).amax([1i64].as_slice(), true).unsqueeze(-1);
    shifted / (max + 1e-7)
}

/// Maps `(B, h, w)` as the images they explain: normalised, resized to `size` (bilinear, pixel
/// centres aligned as OpenCV's `resize`) and normalised again, as pytorch-grad-cam returns them.
pub fn to_image_size(maps: &Tensor, size: [i64; 2]) -> Tensor {
    let up = normalise(maps).unsqueeze(1).upsample_bilinear2d(size, false, None, None).squeeze_dim(1);
    normalise(&up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    #[test]
    fn grad_cam_weights_channels_by_their_mean_gradient() {
        // Two channels of 1x2; gradients average 1 and -1: the map is relu(A_0 - A_1).
        let a = t(&[1.0, 2.0, 3.0, 0.0], &[1, 2, 1, 2]);
        let g = t(&[2.0, 0.0, -1.0, -1.0], &[1, 2, 1, 2]);
        assert_eq!(Vec::<f32>::try_from(grad_cam(&a, &g).flatten(0, -1)).unwrap(), [0.0, 2.0]);
    }

    #[test]
    fn grad_cam_pp_ignores_negative_gradients() {
        let a = Tensor::rand([2, 3, 4, 4], (Kind::Float, Device::Cpu));
        let g = -Tensor::rand([2, 3, 4, 4], (Kind::Float, Device::Cpu));
        assert_eq!(grad_cam_pp(&a, &g).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn tokens_go_on_their_patch_grid_without_the_class_token() {
        // (1, 1 + 4, 2): token i has features (i, 10 i); the class token (0) is dropped.
        let x = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]).view([1, 5, 2]);
        let g = to_grid(&x).unwrap();
        assert_eq!(g.size(), [1, 2, 2, 2]);
        assert_eq!(Vec::<f32>::try_from(g.get(0).get(1).flatten(0, -1)).unwrap(), [10.0, 20.0, 30.0, 40.0]);
        assert!(to_grid(&Tensor::zeros([1, 4, 2], (Kind::Float, Device::Cpu))).is_err());
    }

    #[test]
    fn normalised_maps_span_zero_to_one() {
        let m = normalise(&t(&[2.0, 4.0, 6.0, 3.0, 3.0, 3.0], &[2, 1, 3]));
        let v = Vec::<f32>::try_from(m.flatten(0, -1)).unwrap();
        assert!((v[0] - 0.0).abs() < 1e-6 && (v[1] - 0.5).abs() < 1e-6 && (v[2] - 1.0).abs() < 1e-6);
        assert_eq!(&v[3..], [0.0, 0.0, 0.0], "a constant map becomes zeros");
    }
}
