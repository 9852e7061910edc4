//! Config parsing, overrides and every validation error.

use microvision::{Config, Error};

fn load(text: &str, overrides: &[&str]) -> Result<Config, Error> {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::from_toml_str(text, "test.toml", &ov)
}

fn err(text: &str, overrides: &[&str]) -> String {
    match load(text, overrides) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "config errors exit with 2: {e}");
            e.to_string()
        }
        Ok(_) => panic!("expected an error for {text:?} {overrides:?}"),
    }
}

#[test]
fn empty_file_is_the_default_config() {
    assert_eq!(load("", &[]).unwrap(), Config::default());
}

#[test]
fn shipped_configs_parse() {
    let mut spaces = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/configs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        // A search space `X.space.toml` is checked against its base config `X.toml`.
        if let Some(stem) = name.strip_suffix(".space.toml") {
            let base = Config::load(&path.with_file_name(format!("{stem}.toml")), &[]).unwrap();
            microvision::search::Space::load(&path, &base).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            spaces += 1;
            continue;
        }
        Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    assert!(spaces >= 2, "the demo and searchnet spaces");
}

#[test]
fn values_are_read() {
    let c =
        load("name = \"x\"\n[optim]\nlr = 0.3\nnesterov = false\nmomentum = 0.8\n[train]\nepochs = 3", &[]).unwrap();
    assert_eq!((c.name.as_str(), c.optim.lr, c.optim.nesterov, c.train.epochs), ("x", 0.3, false, 3));
}

#[test]
fn overrides_win_and_parse_types() {
    let c = load(
        "[optim]\nlr = 0.3",
        &["optim.lr=0.01", "model.name=resnet18", "data.augment=false", "optim.betas=[0.8, 0.9]"],
    )
    .unwrap();
    assert_eq!(c.optim.lr, 0.01);
    assert_eq!(c.model.name, "resnet18");
    assert!(!c.data.augment);
    assert_eq!(c.optim.betas, [0.8, 0.9]);
}

#[test]
fn unknown_key_suggests_the_closest() {
    let e = err("[optim]\nlrr = 0.1", &[]);
    assert!(e.contains("test.toml") && e.contains("optim.lrr") && e.contains("did you mean `optim.lr`"), "{e}");
    let e = err("", &["optim.momentun=0.9"]);
    assert!(e.contains("optim.momentun") && e.contains("optim.momentum"), "{e}");
    let e = err("[trian]\nepochs = 1", &[]);
    assert!(e.contains("trian") && e.contains("`train`"), "{e}");
}

#[test]
fn unknown_key_without_close_match_lists_valid_keys() {
    let e = err("[schedule]\nzzzzzzzzzz = 1", &[]);
    assert!(e.contains("valid keys here") && e.contains("pct_start"), "{e}");
}

#[test]
fn wrong_type_names_key() {
    let e = err("[data]\nbatch_size = \"big\"", &[]);
    assert!(e.contains("batch_size") && e.contains("test.toml"), "{e}");
}

#[test]
fn section_given_as_value_is_explained() {
    let e = err("optim = 3", &[]);
    assert!(e.contains("`optim` is a section"), "{e}");
}

#[test]
fn invalid_toml_is_reported() {
    let e = err("[optim\nlr = 1", &[]);
    assert!(e.contains("invalid TOML"), "{e}");
    // A file that is not a config (one long line: HTML, base64) is quoted only in part.
    let e = err(&format!("<html>{}", "x".repeat(100_000)), &[]);
    assert!(e.contains("invalid TOML") && e.contains("more bytes]") && e.len() < 2_000, "{} bytes", e.len());
}

#[test]
fn type_errors_say_what_the_value_should_hold() {
    let e = err("[optim]\nbetas = [\"a\", \"b\"]", &[]);
    assert!(e.contains("expected an array of numbers"), "{e}");
    let e = err("[data]\nroot = 1979-05-27", &[]);
    assert!(e.contains("`data.root` = 1979-05-27: expected a string"), "{e}");
}

#[test]
fn data_limits_are_counts() {
    let e = err("[data]\nlimit_train = -5", &[]);
    assert!(e.contains("data.limit_train") && e.contains("-5"), "{e}");
}

#[test]
fn verifying_own_files_is_refused() {
    let e = err("[data]\nofficial_files = false\nverify_md5 = true", &[]);
    assert!(e.contains("data.verify_md5") && e.contains("data.official_files"), "{e}");
}

#[test]
fn augmentation_counts_are_bounded() {
    let e = err("[augment]\npolicy = \"randaugment\"\nrandaugment_n = 1000000", &[]);
    assert!(e.contains("augment.randaugment_n") && e.contains("1000000"), "{e}");
    let e = err("[augment]\ncutout = 8\ncutout_count = 100000", &[]);
    assert!(e.contains("augment.cutout_count") && e.contains("100000"), "{e}");
}

#[test]
fn override_without_equals_is_explained() {
    let e = err("", &["optim.lr"]);
    assert!(e.contains("section.key=value"), "{e}");
}

#[test]
fn range_errors_name_key_value_and_expectation() {
    let cases: &[(&str, &str, &str)] = &[
        ("data.batch_size=0", "data.batch_size", "positive integer"),
        ("optim.lr=-1", "optim.lr", "positive number"),
        ("optim.momentum=1.5", "optim.momentum", "[0, 0.9999]"),
        ("train.label_smoothing=1.0", "train.label_smoothing", "[0, 0.99]"),
        ("data.val_split=0.95", "data.val_split", "[0, 0.9]"),
        ("train.epochs=0", "train.epochs", "positive integer"),
        ("data.workers=-1", "data.workers", "from 0 to 256"),
        ("train.threads=1000000", "train.threads", "from 0 to 1024"),
        ("train.replicas=0", "train.replicas", "from 1 to 64"),
        ("data.input_size=1000", "data.input_size", "from 1 to 512"),
        ("name=\"a\\nb\"", "`name`", "control characters"),
        ("name=\" \"", "`name`", "1 to 100 bytes"),
        ("name=\"a-lrfind\"", "`name`", "reserved for the directories of lr-find sweeps"),
        ("output.runs_dir=\"\"", "output.runs_dir", "expected a directory"),
        ("schedule.div_factor=0.5", "schedule.div_factor", ">= 1"),
        ("train.grad_clip=-2", "train.grad_clip", ">= 0"),
        ("schedule.warmup_epochs=11", "schedule.warmup_epochs", "to train.epochs (10)"),
        ("data.root=\"\"", "data.root", "expected the directory"),
        ("train.nan_lr_factor=0", "train.nan_lr_factor", "(0, 1]"),
        (
            "data.train_sizes=[16, 40]",
            "data.train_sizes",
            "contains 40: expected image sides from 1 to data.input_size (32)",
        ),
        (
            "data.train_sizes=[16,16,16,16,16,16,16,16,16,16]",
            "data.train_sizes",
            "lists 10 epochs: expected fewer than train.epochs (10)",
        ),
    ];
    for (ov, key, expect) in cases {
        let e = err("", &[ov]);
        assert!(e.contains(key) && e.contains(expect), "{ov}: {e}");
    }
    let e = err("", &["data.batch_size=4", "train.replicas=8"]);
    assert!(e.contains("`train.replicas` = 8") && e.contains("`data.batch_size` is 4; expected at most 4"), "{e}");
}

#[test]
fn enum_errors_list_choices_and_suggest() {
    let e = err("", &["optim.name=sdg"]);
    assert!(e.contains("optim.name") && e.contains("sgd, adamw") && e.contains("did you mean \"sgd\""), "{e}");
    let e = err("", &["train.precision=fp8"]);
    assert!(e.contains("train.precision") && e.contains("bf16"), "{e}");
    let e = err("", &["schedule.name=exponential"]);
    assert!(e.contains("onecycle"), "{e}");
    let e = err("", &["augment.policy=foo"]);
    assert!(e.contains("expected one of \"\" (none), autoaugment"), "{e}");
}

#[test]
fn text_keys_take_the_override_as_text() {
    for name in ["nan", "123", "true"] {
        assert_eq!(load("", &[&format!("name={name}")]).unwrap().name, name);
    }
    assert_eq!(load("", &["name=\"quoted\""]).unwrap().name, "quoted");
}

#[test]
fn errors_blame_the_override_that_set_the_value() {
    let e = err("[optim]\nlr = 0.1\n", &["optim.lr=-0.1"]);
    assert!(e.starts_with("--set optim.lr=-0.1: `optim.lr` = -0.1"), "{e}");
    let e = err("", &["optim.betas=[0.9, 0.9, 0.9]"]);
    assert!(e.starts_with("--set optim.betas=[0.9, 0.9, 0.9]: "), "{e}");
    let e = err("", &["optim={lr=-0.1}"]);
    assert!(e.starts_with("--set optim={lr=-0.1}: `optim.lr`"), "{e}");
    let e = err("[optim]\nlr = -0.1\n", &[]);
    assert!(e.starts_with("config test.toml: `optim.lr`"), "{e}");
    let e = err("[schedule]\nwarmup_epochs = 3\n", &["train.epochs=2"]);
    assert!(e.starts_with("config test.toml with the --set overrides: `schedule.warmup_epochs`"), "{e}");
}

#[test]
fn conflicting_options_are_errors() {
    let e = err("", &["optim.momentum=0", "optim.nesterov=true"]);
    assert!(e.contains("nesterov") && e.contains("momentum"), "{e}");
    let e = err("", &["data.num_classes=100"]);
    assert!(e.contains("num_classes") && e.contains("10 classes"), "{e}");
    let e = err("", &["data.crop_padding=40"]);
    assert!(e.contains("crop_padding"), "{e}");
}

#[test]
fn bad_run_name_is_rejected() {
    let e = err("name = \"../evil\"", &[]);
    assert!(e.contains("`name`"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = Config::load(std::path::Path::new("/nonexistent/x.toml"), &[]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
}

#[test]
fn resolved_config_round_trips_through_toml() {
    let c = load("", &["optim.lr=0.123", "model.name=vgg11"]).unwrap();
    let again = Config::from_toml_str(&c.to_toml(), "again", &[]).unwrap();
    assert_eq!(c, again);
}

#[test]
fn mlflow_uri_must_be_a_url() {
    let e = err("", &["track.mlflow_uri=localhost:5000"]);
    assert!(e.contains("track.mlflow_uri") && e.contains("localhost:5000") && e.contains("http://"), "{e}");
    assert!(load("[track]\nmlflow_uri = \"http://127.0.0.1:5000\"\n", &[]).is_ok());
}

#[test]
fn lr_scales_is_a_free_map_of_positive_numbers() {
    let c = load("[optim.lr_scales]\n\"whiten.bias\" = 64\nhead = 0.5\n", &[]).unwrap();
    assert_eq!(c.optim.lr_scales.get("whiten.bias"), Some(&64.0));
    assert_eq!(c.optim.lr_scales.get("head"), Some(&0.5));
    let c = load("", &["optim.lr_scales={ head = 2.0 }"]).unwrap();
    assert_eq!(c.optim.lr_scales.get("head"), Some(&2.0));
    let e = err("[optim]\nlr_scales = { head = -1.0 }\n", &[]);
    assert!(e.contains("optim.lr_scales.\"head\"") && e.contains("positive"), "{e}");
    let e = err("[optim]\nlr_scales = { head = \"fast\" }\n", &[]);
    assert!(e.contains("`optim.lr_scales.head` = \"fast\": expected a number"), "{e}");
    // An unquoted dotted name is a nested table: the error says to quote it.
    let e = err("[optim.lr_scales]\nwhiten.bias = 64\n", &[]);
    assert!(e.contains("`optim.lr_scales.whiten`") && e.contains("quote dotted parameter names"), "{e}");
    let e = err("[optim]\nmuon_ns_steps = 0\n", &[]);
    assert!(e.contains("optim.muon_ns_steps"), "{e}");
}

#[test]
fn early_stopping_needs_a_validation_split_in_new_runs_only() {
    let text = "[train]\nearly_stop_patience = 2\n";
    let e = err(text, &[]);
    assert!(e.contains("train.early_stop_patience") && e.contains("data.val_split"), "{e}");
    assert!(load(text, &["data.val_split=0.1"]).is_ok());
    // A run saved before the check keeps opening (eval, report, resume of existing runs).
    assert!(microvision::Config::from_saved_toml(text, "config.toml", &[]).is_ok());
    let e = err("[track]\nwandb_mode = \"sideways\"\n", &[]);
    assert!(e.contains("sideways") && e.contains("online"), "{e}");
}
