//! `data download` from a mirror that serves its own archive (`--url` + `--md5`, a local HTTP
//! server on 127.0.0.1), `data info`'s output on the result, and `models --memory`.

mod common;

use common::{assert_user_error, mv, stderr};
use std::io::{Read, Write};
use std::path::Path;

/// Serves `body` once on a loopback port; returns the URL.
fn serve_once(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(mut stream)) = listener.incoming().next() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/mirror/cifar-10-binary.tar.gz")
}

/// A tar.gz of a synthetic `cifar-10-batches-bin/` (5 x 20 training, 30 test records).
fn archive(dir: &Path) -> Vec<u8> {
    let src = dir.join("src");
    common::synthetic_cifar10(&src, 20, 30);
    let tgz = dir.join("mirror.tar.gz");
    let ok = std::process::Command::new("tar")
        .args(["czf", tgz.to_str().unwrap(), "-C", src.to_str().unwrap(), "cifar-10-batches-bin"])
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::read(tgz).unwrap()
}

#[test]
fn a_mirror_archive_with_its_md5_downloads_and_data_info_describes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let body = archive(tmp.path());
    let sum = microvision::data::cifar::md5_file(&tmp.path().join("mirror.tar.gz")).unwrap();
    let root = tmp.path().join("data");
    let url = serve_once(body);
    let o = mv(
        &["data", "download", "cifar10", "--url", &url, "--md5", &sum, "--root", root.to_str().unwrap()],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("verified against --md5") && said.contains("data.official_files = false"), "{said}");
    for f in ["data_batch_1.bin", "data_batch_5.bin", "test_batch.bin", "batches.meta.txt"] {
        let (got, want) =
            (root.join("cifar-10-batches-bin").join(f), tmp.path().join("src/cifar-10-batches-bin").join(f));
        assert_eq!(std::fs::read(got).unwrap(), std::fs::read(want).unwrap(), "{f} extracted as served");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Again: nothing would be downloaded, so nothing can be checked against the sum.
    let o = mv(
        &["data", "download", "cifar10", "--url", &url, "--md5", &sum, "--root", root.to_str().unwrap()],
        tmp.path(),
    );
    assert_user_error(&o, 2, &["already in", "another --root"]);

    // `data info` on it: both splits, their sizes, shape and the count of every class.
    let o = mv(&["data", "info", "cifar10", "--root", root.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(info.contains("train: 100 images of 3x32x32, 10 classes"), "{info}");
    assert!(info.contains("test: 30 images of 3x32x32, 10 classes"), "{info}");
    let counts: Vec<&str> = info.lines().filter(|l| l.trim_start().starts_with("airplane")).collect();
    assert_eq!(counts.len(), 2, "{info}");
    assert!(counts[0].trim().ends_with(" 10") && counts[1].trim().ends_with(" 3"), "{counts:?}");
    assert!(info.contains("mean [") && info.contains("std ["), "{info}");

    // The official check is what catches these files in training, unless the config says so.
    let cfg = tmp.path().join("t.toml");
    let text = format!(
        "name = \"m\"\n[data]\nroot = \"{}\"\nbatch_size = 50\n[train]\nepochs = 1\nthreads = 1\n[output]\nruns_dir = \"{}\"\n",
        root.display(),
        tmp.path().join("runs").display()
    );
    std::fs::write(&cfg, &text).unwrap();
    let train = |extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_microvision"));
        c.env_remove("MICROVISION_DATA").args(["train", "-c", cfg.to_str().unwrap()]).args(extra);
        c.output().unwrap()
    };
    assert_user_error(&train(&[]), 3, &["data_batch_1.bin", "data.official_files"]);
    let o = train(&["--set", "data.official_files=false"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn md5_mistakes_are_refused_before_any_download() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let r = root.to_str().unwrap();
    assert_user_error(&mv(&["data", "download", "cifar10", "--md5", "0123", "--root", r], tmp.path()), 2, &["--url"]);
    let url = "http://127.0.0.1:9/x.tar.gz";
    let o = mv(&["data", "download", "cifar10", "--url", url, "--md5", "not-a-sum", "--root", r], tmp.path());
    assert_user_error(&o, 2, &["not-a-sum", "32 hexadecimal digits"]);
    let sum = "0123456789abcdef0123456789abcdef";
    let o = mv(&["data", "download", "fashion_mnist", "--url", url, "--md5", sum, "--root", r], tmp.path());
    assert_user_error(&o, 2, &["--md5", "cifar10, cifar100"]);
    assert!(!root.exists(), "nothing was created");
}

#[test]
fn models_memory_measures_a_training_step() {
    let small = microvision::lab::models_named("simple_cnn", true).unwrap();
    let (bytes, checkpointed) = small.step_bytes.expect("measured");
    // At least the fp32 weights, their gradients and the activations of a batch of 128.
    assert!(bytes > 3 * 4 * small.params as u64, "{bytes} bytes for {} parameters", small.params);
    assert!(checkpointed.is_none(), "simple_cnn has no segments to checkpoint");
    let resnet = microvision::lab::models_named("resnet18", true).unwrap();
    let (plain, checkpointed) = resnet.step_bytes.unwrap();
    let checkpointed = checkpointed.expect("resnet18 is segmented");
    assert!(plain > bytes, "resnet18 {plain} vs simple_cnn {bytes}");
    assert!(checkpointed < plain, "gradient checkpointing saves memory: {checkpointed} vs {plain}");
    assert!(microvision::lab::models_named("resnet19", true).is_err());
}
