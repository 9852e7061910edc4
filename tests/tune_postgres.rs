//! Two tuning workers sharing a study in a real PostgreSQL server, the storage a study spread
//! over several machines uses. The test starts its own throwaway server (Debian's
//! `postgresql`; `scripts/setup.sh --postgres` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use microvision::search::optuna::Optuna;
use microvision::search::study::{Study, TrialState};

/// Debian's server binaries (`/usr/lib/postgresql/<version>/bin`), or None after `common::skip`.
fn pg_bin() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path().join("bin")).find(|b| b.join("initdb").is_file()));
    if found.is_none() {
        common::skip("PostgreSQL server not installed (scripts/setup.sh --postgres installs Debian's postgresql)");
    }
    found
}

/// A server on a free loopback port with trust authentication, stopped when dropped. As root
/// (CI), it runs as the `postgres` user, as the server refuses root.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl Server {
    fn start(bin: PathBuf, dir: &Path) -> Server {
        // SAFETY: geteuid(2) has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres"]).arg(dir).status().unwrap().success();
            assert!(ok, "chown to the postgres user");
        }
        let port = common::free_port();
        let s = Server { bin, data: dir.join("pg"), as_postgres, port };
        s.run("initdb", &["-D", s.data.to_str().unwrap(), "--auth=trust", "-U", "mv"]);
        let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.display());
        s.run(
            "pg_ctl",
            &["-D", s.data.to_str().unwrap(), "-o", &opts, "-l", dir.join("log").to_str().unwrap(), "-w", "start"],
        );
        s
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(out.status.success(), "{tool}: {}", common::stderr(&out));
    }

    fn url(&self) -> String {
        format!("postgresql://mv@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap().to_string();
        let _ = std::panic::catch_unwind(|| self.run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]));
    }
}

#[test]
fn two_workers_share_a_study_in_postgresql() {
    let Some(bin) = pg_bin() else { return };
    let Some(py) = common::venv_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(bin, tmp.path());
    let work = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&work.path().join("data"), 40, 40);
    let base = work.path().join("base.toml");
    std::fs::write(
        &base,
        format!(
            "name = \"pg\"\n[data]\nroot = \"{}\"\nofficial_files = false\ndownload = false\nbatch_size = 50\n\
             val_split = 0.2\n[train]\nepochs = 1\nthreads = 1\nprogress = false\n[output]\nruns_dir = \"{}\"\n",
            work.path().join("data").display(),
            work.path().join("runs").display()
        ),
    )
    .unwrap();
    let space = work.path().join("space.toml");
    std::fs::write(&space, "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["tune", "-c", base.to_str().unwrap(), "--space", space.to_str().unwrap()])
        .args(["--trials", "4", "--workers", "2", "--pruner", "none", "--study", "shared", "--storage", &server.url()])
        .env("MICROVISION_PYTHON", &py)
        .env_remove("MICROVISION_DATA")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let mut optuna = Optuna::start(py).unwrap();
    let s = Study::read(&mut optuna, "shared", &server.url()).unwrap();
    let mut numbers: Vec<i64> = s.trials.iter().map(|t| t.number).collect();
    numbers.sort();
    assert_eq!(numbers, vec![0, 1, 2, 3]);
    assert!(s.trials.iter().all(|t| t.state == TrialState::Complete), "{:?}", s.counts());
    // Both workers took trials (each records its host:pid).
    let mut workers: Vec<&str> = s.trials.iter().map(|t| t.attrs["worker"].as_str().unwrap()).collect();
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), 2, "{workers:?}");
}
