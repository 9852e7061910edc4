//! One entry point per map method: the maps of a batch of images for given classes, raw (at
//! the layer's or the input's resolution) and as images (normalised, at the input's size).

use tch::{Kind, Tensor};

use super::{attribution as attr, cam, rollout};
use crate::config_err;
use crate::error::Result;
use crate::models::Model;

/// A way to draw what a model looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MapMethod {
    /// Grad-CAM at a layer.
    #[serde(rename = "gradcam")]
    GradCam,
    /// Grad-CAM++ at a layer.
    #[serde(rename = "gradcam++")]
    GradCamPlusPlus,
    /// Score-CAM at a layer (one forward pass per channel and image: slow).
    #[serde(rename = "scorecam")]
    ScoreCam,
    /// Input gradients.
    #[serde(rename = "saliency")]
    Saliency,
    /// Input gradients averaged over noisy copies.
    #[serde(rename = "smoothgrad")]
    SmoothGrad,
    /// Attention rollout (transformers only).
    #[serde(rename = "rollout")]
    Rollout,
}

impl MapMethod {
    /// Every method, in the order the CLI lists them.
    pub const ALL: [MapMethod; 6] = [
        MapMethod::GradCam,
        MapMethod::GradCamPlusPlus,
        MapMethod::ScoreCam,
        MapMethod::Saliency,
        MapMethod::SmoothGrad,
        MapMethod::Rollout,
    ];

    /// The name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            MapMethod::GradCam => "gradcam",
            MapMethod::GradCamPlusPlus => "gradcam++",
            MapMethod::ScoreCam => "scorecam",
            MapMethod::Saliency => "saliency",
            MapMethod::SmoothGrad => "smoothgrad",
            MapMethod::Rollout => "rollout",
        }
    }

    /// The file-name stem (`gradcampp` for Grad-CAM++).
    pub fn stem(self) -> String {
        self.name().replace("++", "pp")
    }

    /// Whether the method works at a layer (`--layer`).
    pub fn uses_layer(self) -> bool {
        matches!(self, MapMethod::GradCam | MapMethod::GradCamPlusPlus | MapMethod::ScoreCam)
    }

    /// Whether the map is drawn over the image (class maps) or on its own (input gradients).
    pub fn overlays(self) -> bool {
        !matches!(self, MapMethod::Saliency | MapMethod::SmoothGrad)
    }
}

/// Settings of the map methods.
#[derive(Debug, Clone)]
pub struct MapSettings {
    /// The tap point of the layer methods.
    pub layer: String,
    /// Masked images per forward pass of Score-CAM.
    pub score_cam_batch: i64,
    /// SmoothGrad: noisy copies per image.
    pub smooth_samples: usize,
    /// SmoothGrad: noise standard deviation as a fraction of the image's value range.
    pub smooth_noise: f64,
    /// SmoothGrad's noise seed.
    pub seed: u64,
}

/// The maps of `method` for normalised images `x` `(B, C, H, W)` and target `classes` `(B,)`:
/// raw (`(B, h, w)` at the layer, `(B, C, H, W)` input gradients, `(B, g, g)` rollout) and as
/// images `(B, H, W)` in [0, 1].
pub fn maps(
    model: &Model,
    method: MapMethod,
    x: &Tensor,
    classes: &Tensor,
    s: &MapSettings,
) -> Result<(Tensor, Tensor)> {
    let size = [x.size()[2], x.size()[3]];
    let raw = match method {
        MapMethod::GradCam | MapMethod::GradCamPlusPlus => {
            let [_, acts, grads] = attr::activations_and_grads(model, &s.layer, x, classes)?;
            if method == MapMethod::GradCam {
                cam::grad_cam(&acts, &grads)
            } else {
                cam::grad_cam_pp(&acts, &grads)
            }
        }
        MapMethod::ScoreCam => attr::score_cam(model, &s.layer, x, classes, s.score_cam_batch)?,
        MapMethod::Saliency => attr::saliency(model, x, classes),
        MapMethod::SmoothGrad => attr::smooth_grad(model, x, classes, s.smooth_samples, s.smooth_noise, s.seed),
        MapMethod::Rollout => {
            let attention = attr::attention(model, x);
            if attention.is_empty() {
                return Err(config_err!(
                    "--method rollout: model {} has no attention layers (vit_lite7 has); for a CNN, Grad-CAM is its attention map",
                    model.name
                ));
            }
            rollout::rollout(&attention)?
        }
    };
    let images = if method.overlays() {
        cam::to_image_size(&raw, size)
    } else {
        // The strongest channel per pixel, as saliency maps are usually drawn.
        cam::normalise(&raw.amax([1i64].as_slice(), false))
    };
    Ok((raw.to_kind(Kind::Float), images))
}
