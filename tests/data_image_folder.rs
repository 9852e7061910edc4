//! `image_folder`: PNG and JPEG of any size resized to `input_size`, class names from the
//! directories, a broken file skipped or fatal by config, the cache, and an end-to-end training.

mod common;

use image::{Rgb, RgbImage};
use std::path::Path;

use microvision::data::image_folder::read_split;
use microvision::train::Trainer;

/// `root/<split>/<class>/` with `n` images per class: class k is a uniform colour, sizes vary.
fn write_tree(root: &Path, classes: &[&str], n: u32) {
    for split in ["train", "test"] {
        for (k, class) in classes.iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let (w, h) = (40 + 7 * i, 30 + 5 * (i % 3));
                let shade = (60 * k as u32 + 3 * i) as u8;
                let img = RgbImage::from_pixel(w, h, Rgb([shade, 255 - shade, 128]));
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(dir.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
}

#[test]
fn images_of_any_size_are_resized_and_labelled_by_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &["cat", "ant", "bee"], 4);
    let ds = read_split(tmp.path(), true, 24, false).unwrap();
    assert_eq!(ds.classes, ["ant", "bee", "cat"], "sorted class directories");
    assert_eq!(ds.images.size(), [12, 3, 24, 24]);
    let labels = Vec::<i64>::try_from(&ds.labels).unwrap();
    assert_eq!(labels, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    // A uniform PNG stays uniform through resize and crop: "cat" (written first) image 0 is
    // (0, 255, 128), stored planar.
    let img = ds.images.get(8);
    let px = Vec::<u8>::try_from(img.flatten(0, -1)).unwrap();
    let plane = |c: usize| &px[c * 576..(c + 1) * 576];
    assert!(plane(0).iter().all(|&v| v == 0) && plane(1).iter().all(|&v| v == 255), "png pixels exact");
    assert!(plane(2).iter().all(|&v| v == 128));
    assert!(tmp.path().join(".microvision-train-24.cache").exists());
    let again = read_split(tmp.path(), true, 24, false).unwrap();
    assert!(again.images.equal(&ds.images) && again.labels.equal(&ds.labels), "the cache gives the same data");
}

#[test]
fn a_broken_image_is_fatal_or_skipped_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &["a", "b"], 3);
    let broken = tmp.path().join("train/b/broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = read_split(tmp.path(), true, 16, false).unwrap_err().to_string();
    assert!(e.contains("broken.png") && e.contains("on_corrupt"), "{e}");
    let ds = read_split(tmp.path(), true, 16, true).unwrap();
    assert_eq!(ds.len(), 6, "the broken file is left out");
    let e = read_split(&tmp.path().join("nothing"), true, 16, false).unwrap_err().to_string();
    assert!(e.contains("train"), "{e}");
}

#[test]
fn trains_end_to_end_on_an_image_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("flowers");
    write_tree(&root, &["daisy", "rose", "tulip"], 12);
    let mut cfg = common::tiny_config(&root, &tmp.path().join("runs"));
    cfg.data.dataset = "image_folder".into();
    cfg.data.input_size = 24;
    cfg.data.num_classes = 3;
    let mut t = Trainer::new(cfg.clone()).unwrap();
    let test = microvision::lab::fit(&mut t).unwrap().test;
    assert!(test.acc.is_finite());
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.run_dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["classes"], serde_json::json!(["daisy", "rose", "tulip"]));
    cfg.data.num_classes = 5;
    let e = Trainer::new(cfg.clone()).err().unwrap().to_string();
    assert!(e.contains("3 classes") && e.contains("set data.num_classes = 3") && e.contains("daisy"), "{e}");
    // Too small for SimpleCNN's three poolings: a config error before LibTorch sees a 0-wide layer.
    let tiny = microvision::Config {
        data: microvision::config::DataConfig { num_classes: 3, input_size: 4, crop_padding: 0, ..cfg.data.clone() },
        ..cfg.clone()
    };
    let e = Trainer::new(tiny).err().unwrap();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("does not work on 3x4x4 inputs"), "{e}");
    // Different class folders in the two splits: both lists are named.
    std::fs::rename(root.join("test/tulip"), root.join("test/lily")).unwrap();
    cfg.data.num_classes = 3;
    let e = Trainer::new(cfg).err().unwrap().to_string();
    assert!(e.contains("(daisy, rose, tulip)") && e.contains("(daisy, lily, rose)"), "{e}");
}
