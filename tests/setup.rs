//! The setup contract: binaries find LibTorch by their rpath, and the `.venv/libtorch` link that
//! tch's build reads stays valid for every checkout sharing the cached venv.

mod common;

use std::process::Command;

#[test]
fn the_binary_runs_without_a_library_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .arg("--version")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("microvision "));
}

#[test]
fn the_libtorch_link_points_at_a_resolved_path() {
    let link = common::repo(".venv/libtorch");
    let Ok(target) = std::fs::read_link(&link) else {
        return; // LIBTORCH set by hand, no link made by scripts/setup.sh
    };
    // The link lives in the venv that every clone shares: a target through one clone's `.venv`
    // link would dangle for the others once that clone is deleted.
    assert_eq!(std::fs::canonicalize(&target).unwrap(), target, "{} -> {}", link.display(), target.display());
    assert!(target.join("include/torch/csrc/api/include/torch/torch.h").is_file(), "{}", target.display());
}
