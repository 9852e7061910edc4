//! The maps of one method: computed for the chosen test images (and, when asked, the first N),
//! saved as safetensors and drawn as the per-class and wrong-image grids.

use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

use super::{ExplainArgs, MapMethod, Subject};
use crate::analysis::explain::{draw, maps, Figure, MapSummary};
use crate::analysis::plots::{save, ImageGrid, Tile};
use crate::error::Result;

/// Test images to draw: the first `per_class` of each class, then the `wrong` most confidently
/// wrong ones. Returns their indices and whether each is from the wrong set.
fn pick(s: &Subject, per_class: usize, wrong: usize) -> Vec<(i64, bool)> {
    let labels = Vec::<i64>::try_from(&s.test.labels.to_device(Device::Cpu)).unwrap_or_default();
    let (conf, pred) = s.probs.max_dim(1, false);
    let (conf, pred) = (Vec::<f32>::try_from(conf).unwrap_or_default(), Vec::<i64>::try_from(pred).unwrap_or_default());
    let mut picks = Vec::new();
    for c in 0..s.test.classes.len() as i64 {
        picks
            .extend(labels.iter().enumerate().filter(|(_, &l)| l == c).take(per_class).map(|(i, _)| (i as i64, false)));
    }
    let mut wrongs: Vec<usize> = (0..labels.len()).filter(|&i| pred[i] != labels[i]).collect();
    wrongs.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]));
    picks.extend(wrongs.into_iter().take(wrong).map(|i| (i as i64, true)));
    picks
}

/// The class each image is explained for: the one asked, else the predicted one.
fn targets(s: &Subject, idx: &Tensor, class: Option<i64>) -> Tensor {
    match class {
        Some(c) => Tensor::full([idx.size()[0]], c, (Kind::Int64, s.x.device())),
        None => s.probs.index_select(0, idx).argmax(1, false).to_device(s.x.device()),
    }
}

/// Maps of `idx` in batches of 32: raw maps and image-sized maps, concatenated.
fn batched_maps(
    s: &Subject,
    m: MapMethod,
    idx: &[i64],
    st: &maps::MapSettings,
    class: Option<i64>,
) -> Result<(Tensor, Tensor)> {
    let (mut raws, mut images) = (Vec::new(), Vec::new());
    for chunk in idx.chunks(32) {
        let i = Tensor::from_slice(chunk);
        let x = s.x.index_select(0, &i.to_device(s.x.device()));
        let (raw, img) = maps::maps(&s.model, m, &x, &targets(s, &i, class), st)?;
        raws.push(raw.to_device(Device::Cpu));
        images.push(img.to_device(Device::Cpu));
    }
    Ok((Tensor::cat(&raws, 0), Tensor::cat(&images, 0)))
}

pub(super) fn explain_maps(
    s: &Subject,
    m: MapMethod,
    st: &maps::MapSettings,
    args: &ExplainArgs,
    class: Option<i64>,
    explain_dir: &Path,
    plots_dir: &Path,
) -> Result<(MapSummary, Vec<PathBuf>)> {
    let picks = pick(s, args.per_class, args.wrong);
    let idx: Vec<i64> = picks.iter().map(|p| p.0).collect();
    let started = Instant::now();
    let (raw, images) = batched_maps(s, m, &idx, st, class)?;
    let (mut timed, mut secs) = (idx.len(), started.elapsed().as_secs_f64());
    let file = explain_dir.join(format!("{}.safetensors", m.stem()));
    let index = Tensor::from_slice(&idx);
    let target = targets(s, &index, class).to_device(Device::Cpu);
    let mut tensors = vec![("raw", raw), ("maps", images.shallow_clone()), ("index", index), ("target", target)];
    if args.test_images > 0 {
        let all: Vec<i64> = (0..(args.test_images as i64).min(s.test.len())).collect();
        let started = Instant::now();
        let (raw_all, _) = batched_maps(s, m, &all, st, class)?;
        (timed, secs) = (all.len(), started.elapsed().as_secs_f64());
        tensors.push(("raw_all", raw_all));
    }
    super::save_tensors(&file, &tensors)?;
    let (figures, mut files) = draw_maps(s, m, &picks, &images, &tensors[3].1, st, plots_dir)?;
    files.push(file.clone());
    let layer = m.uses_layer().then(|| st.layer.clone());
    let file = format!("explain/{}", file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
    Ok((MapSummary { method: m, layer, images: timed, secs, file, figures }, files))
}

/// The per-class and the wrong-image grids of one method: each image, then its map.
fn draw_maps(
    s: &Subject,
    m: MapMethod,
    picks: &[(i64, bool)],
    maps: &Tensor,
    target: &Tensor,
    st: &maps::MapSettings,
    plots_dir: &Path,
) -> Result<(Vec<Figure>, Vec<PathBuf>)> {
    let images = s.test.images.to_device(Device::Cpu);
    let labels = Vec::<i64>::try_from(&s.test.labels.to_device(Device::Cpu)).unwrap_or_default();
    let name = |c: i64| s.test.classes.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
    let what = if m.uses_layer() { format!("{} at {}", m.name(), st.layer) } else { m.name().to_string() };
    let (mut figures, mut files) = (Vec::new(), Vec::new());
    for (wrong_set, stem_part, title) in
        [(false, "classes", "by true class"), (true, "wrong", "the most confidently wrong test images")]
    {
        let mut tiles: Vec<Tile> = Vec::new();
        for (k, &(i, wrong)) in picks.iter().enumerate().filter(|(_, p)| p.1 == wrong_set) {
            let (t, p) = (target.int64_value(&[k as i64]), s.probs.get(i));
            let pred = p.argmax(0, false).int64_value(&[]);
            let caption = vec![format!("true {}", name(labels[i as usize]))];
            tiles.push(Tile::from_images(&images, i, caption, wrong));
            let explained = vec![format!("{} {:.2}", name(t), p.double_value(&[t])), format!("(pred {})", name(pred))];
            let map = maps.get(k as i64);
            tiles.push(if m.overlays() {
                draw::overlay_tile(&images, i, &map, explained, wrong)
            } else {
                draw::heat_tile(&map, explained)
            });
        }
        if tiles.is_empty() {
            continue;
        }
        let cols =
            if wrong_set { 8 } else { (2 * picks.iter().filter(|p| !p.1).count() / s.test.classes.len()).clamp(2, 12) };
        let stem = format!("explain_{}_{stem_part}", m.stem());
        let caption = format!("{what}: {title} (each image, then its map for the class named under it)");
        let grid = ImageGrid { title: format!("{what}, {stem_part}"), tiles, cols, judged: wrong_set };
        files.extend(save(&grid, plots_dir, &stem)?);
        figures.push(Figure { stem, caption });
    }
    Ok((figures, files))
}
