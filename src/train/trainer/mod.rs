//! The training loop. It reads top to bottom:
//! `fit` -> for each epoch: `train_epoch` (train steps) -> `evaluate` -> callbacks -> checkpoints.
//!
//! Reproducibility: the model is initialised from `seed`; the shuffle order, augmentation draws and
//! dropout of epoch `e` derive from `(seed, e)` alone, and checkpoints are taken at epoch ends, so a
//! resumed run computes exactly what an uninterrupted one would (bit for bit on CPU).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::{Device, Kind};

mod epoch;
mod lr_find;
mod persist;
mod ranks;
mod setup;

use ranks::{create_run, in_turn, join_group, local_device, shard, writes, EvalLoader};
use setup::{absolute_paths, check_data_fits, check_new_run, read_pretrained};
pub use setup::{check_model, loader_spec, model_args};

pub use lr_find::{suggest_lr, LrFind};

use super::callbacks::{Callback, EpochInfo, FitInfo};
use super::checkpoint::{self, TrainState};
use super::distributed::Dist;
use super::ema::Ema;
use super::eval::Tta;
use super::lookahead::Lookahead;
use super::optim::Optimizer;
use super::pretrained;
use super::replicas::Replicas;
use super::schedule::Schedule;
use crate::config::Config;
use crate::data::loader::Loader;
use crate::data::{self, DataSplits, Dataset};
use crate::device::{self, Precision};
use crate::error::{Error, Result};
use crate::fsio;
use crate::metrics::EvalResult;
use crate::models::Model;
use crate::run::{self, EvalFile};

/// Divergence restores allowed per `fit` with `train.on_nan = "restore"`.
const MAX_RESTORES: u32 = 3;

/// Owns everything a run needs: config, data, model, optimizer, state and callbacks.
pub struct Trainer {
    /// The resolved config (as written to `config.toml`).
    pub cfg: Config,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Compute device.
    pub device: Device,
    /// Matmul precision.
    pub precision: Precision,
    /// The network and its parameters.
    pub model: Model,
    /// Where the run stands.
    pub state: TrainState,
    /// Stop after this epoch (its checkpoint written) as if interrupted; `fit` then returns that
    /// epoch's validation result and skips the final test evaluation. For time-boxed runs and tests.
    pub stop_after: Option<i64>,
    /// Set (e.g. by a SIGINT/SIGTERM handler) to stop after the current step: the trainer then
    /// writes `last` and returns [`Error::Interrupted`] with the command that resumes the run.
    pub stop: Arc<AtomicBool>,
    optim: Optimizer,
    /// The model's data-parallel copies (`train.replicas`, CPU only).
    replicas: Replicas,
    /// A fixed learning rate instead of the schedule (the LR finder's sweep).
    lr_override: Option<f64>,
    /// Moving average of the weights (`train.ema_decay` > 0), evaluated instead of the weights.
    ema: Option<Ema>,
    /// Lookahead's slow weights (`train.lookahead_every` > 0).
    lookahead: Option<Lookahead>,
    /// Seconds spent on data-dependent initialisation (airbench's whitening) before the first
    /// step: one-time setup, not training time.
    pub setup_secs: f64,
    schedule: Schedule,
    data: DataSplits,
    train_loader: Loader,
    callbacks: Vec<Box<dyn Callback>>,
    /// Held from `new`/`resume` until `fit` returns: one trainer trains a run at a time (on
    /// rank 0 of a multi-process run, which alone writes the run directory).
    lock: Option<run::RunLock>,
    /// The other processes of a multi-process run (`torchrun`), if any.
    dist: Option<Dist>,
}

impl Trainer {
    /// A new run: creates `runs/<name>-<timestamp>/` and writes `config.toml` and `env.json`.
    /// The steps, in order; nothing is written before every check has passed:
    /// 1. paths made absolute (so `eval` and `--resume` from elsewhere find the same files),
    ///    device and precision resolved;
    /// 2. checks without side effects: the model is built on the CPU and an image passed through
    ///    it (a throwaway probe: its train-mode passes move BatchNorm statistics, so it cannot be
    ///    the model that trains), the new-run rules, `model.init_from`'s weights read and matched;
    /// 3. the data loaded (downloaded if allowed) and checked to fill an epoch;
    /// 4. the run directory created and locked, `config.toml` written;
    /// 5. the parts assembled from the config (model seeded, optimizer, loader, schedule);
    /// 6. the weights initialised: data-dependent initialisation, then `init_from`;
    /// 7. `env.json` written.
    pub fn new(mut cfg: Config) -> Result<Trainer> {
        cfg.validate()?; // a config built in code gets the checks a loaded one had
        crate::config::check_early_stopping(&cfg)?;
        absolute_paths(&mut cfg);
        let (device, precision) = device::resolve(&cfg.train)?;
        let device = local_device(device, cfg.train.device.as_str());
        device::set_threads(cfg.train.threads);
        let probe = check_model(&cfg)?;
        check_new_run(&cfg)?;
        let pretrained = read_pretrained(&cfg, &probe)?;
        drop(probe);
        let dist = join_group(&cfg)?;
        let data = in_turn(&dist, "while rank 0 loads the data", || data::load(&cfg.data, cfg.train.seed))?;
        check_data_fits(&cfg, &data)?;
        let (run_dir, lock) = create_run(&cfg, &dist)?;
        let mut trainer = Trainer::assemble(cfg, (run_dir, lock), device, precision, data, dist)?;
        trainer.init_from_data();
        let record = match pretrained {
            Some(p) => Some(trainer.start_from(&p)?),
            None => None,
        };
        if trainer.writes_run() {
            trainer.write_provenance(record)?;
        }
        trainer.share_weights(true)?;
        Ok(trainer)
    }

    /// Continues the run in `run`, from its last valid checkpoint (falling back to `best` with a
    /// warning when `last` is corrupt).
    pub fn resume(run: &Path) -> Result<Trainer> {
        Trainer::resume_with(run, &[])
    }

    /// [`Trainer::resume`] with `key=value` overrides of the settings a resume may change
    /// ([`run::recipe::RESUMABLE_KEYS`]: a lower `optim.lr` after a divergence, ...), written to
    /// `config.toml` and recorded in `env.json`. A `config.toml` edited since the run started is
    /// refused, naming the keys: a run's recipe is fixed at its start.
    pub fn resume_with(run: &Path, overrides: &[String]) -> Result<Trainer> {
        if run::is_lr_sweep(run) {
            return Err(Error::Checkpoint(format!(
                "{} holds a learning-rate sweep (lr_find.json), not a training run: nothing to resume. Train with \
                 `microvision train -c {}`",
                run.display(),
                run.join("config.toml").display()
            )));
        }
        run::recipe::check_resumable(overrides)?;
        let saved = run::read_config(run)?;
        // Read only: the overrides are written once the run is locked and every rank has read it.
        let cfg = if overrides.is_empty() { saved.clone() } else { run::read_config_with(run, overrides)? };
        let dist = join_group(&cfg)?;
        // Before anything in the run is read for training or written.
        let lock = if writes(&dist) { Some(run::lock(run)?) } else { None };
        if let Some(started) = run::Env::read(run).and_then(|e| e.config) {
            let started = Config::from_saved_toml(&started, "the config recorded in env.json", &[])?;
            run::recipe::check_unchanged(run, &started, &saved)?;
        }
        let (device, precision) = device::resolve(&cfg.train)?;
        let device = local_device(device, cfg.train.device.as_str());
        device::set_threads(cfg.train.threads);
        check_model(&cfg)?; // config.toml may have been edited (the advice after a divergence)
        let data = in_turn(&dist, "while rank 0 loads the data", || data::load_for_run(run, &cfg))?;
        let mut t = Trainer::assemble(cfg, (run.to_path_buf(), lock), device, precision, data, dist)?;
        t.check_same_data()?;
        t.restore_newest_checkpoint()?;
        if let Some(d) = &t.dist {
            d.barrier("while the ranks read the run")?; // every rank has read it before rank 0 writes
        }
        if t.writes_run() {
            checkpoint::remove_stale_temporaries(&t.checkpoint_dir());
            if !overrides.is_empty() {
                t.record_overrides(overrides)?;
            }
        }
        t.share_weights(false)?;
        Ok(t)
    }

    fn assemble(
        cfg: Config,
        (run_dir, lock): (PathBuf, Option<run::RunLock>),
        device: Device,
        precision: Precision,
        data: DataSplits,
        dist: Option<Dist>,
    ) -> Result<Trainer> {
        let args = model_args(&cfg);
        let mut model = Model::new_seeded(&cfg.model.name, &args, device, cfg.train.seed)?;
        if cfg.train.channels_last {
            model.to_channels_last();
        }
        let optim = Optimizer::new(&model.vs, &cfg.optim, precision);
        let replicas = Replicas::new(&model, &args, cfg.train.replicas.max(1) as usize, cfg.train.channels_last)?;
        optim.check_lr_scales(&cfg.optim.lr_scales).map_err(|m| crate::config_err!("{m}"))?;
        let (ema, lookahead) = fresh_averages(&model.vs, &cfg.train);
        let train = data.train.to_device(device);
        let train_loader = shard(Loader::new(&train, loader_spec(&cfg, &data, true)), &dist);
        let steps = epoch::per_epoch(train_loader.num_batches(), cfg.train.accumulate_steps);
        let schedule = Schedule::from_config(&cfg.schedule, steps as u64);
        let state = TrainState::new(cfg.train.seed, &cfg.model.name, cfg.data.num_classes);
        Ok(Trainer {
            cfg,
            run_dir,
            device,
            precision,
            model,
            state,
            stop_after: None,
            lr_override: None,
            stop: Arc::new(AtomicBool::new(false)),
            optim,
            replicas,
            ema,
            lookahead,
            setup_secs: 0.0,
            schedule,
            data,
            train_loader,
            callbacks: Vec::new(),
            lock,
            dist,
        })
    }

    /// The model's data-dependent initialisation (see [`crate::models::Network::init_from_data`])
    /// from the first 5,000 normalised training images, timed into `setup_secs`. The lookahead
    /// copy and the weight average restart from the initialised weights.
    fn init_from_data(&mut self) {
        let start = std::time::Instant::now();
        let n = self.data.train.len().min(5000);
        let images = self.data.train.images.narrow(0, 0, n).to_device(self.device);
        let images = crate::data::transforms::normalize(&images, &self.data.mean, &self.data.std);
        self.model.net.init_from_data(&images);
        (self.ema, self.lookahead) = fresh_averages(&self.model.vs, &self.cfg.train);
        self.setup_secs = start.elapsed().as_secs_f64();
    }

    /// Copies `model.init_from`'s weights in and restarts the weight averages from them; saves
    /// them as an epoch-0 `last` checkpoint, so a resume before the first epoch ends needs no
    /// source. After the data-dependent initialisation: airbench's whitening stays the source's,
    /// which its later layers were trained on. Returns the source's record for `env.json`.
    fn start_from(&mut self, p: &pretrained::Pretrained) -> Result<run::InitFrom> {
        pretrained::apply(p, &self.model.vs);
        (self.ema, self.lookahead) = fresh_averages(&self.model.vs, &self.cfg.train);
        let epoch = p.record.epoch.map_or(String::new(), |e| format!(", epoch {e}"));
        crate::notice::info(format!("initialised from {} ({} tensors{epoch})", p.origin.display(), p.weights.len()));
        for why in &p.fresh {
            crate::notice::info(format!("  kept its fresh initialisation: {why}"));
        }
        if self.writes_run() {
            checkpoint::save(&self.checkpoint_dir(), "last", &self.model.vs, &self.checkpoint_tensors(), &self.state)?;
        }
        Ok(p.record.clone())
    }

    /// Registers a callback (logger, early stopping...).
    pub fn add_callback(&mut self, cb: Box<dyn Callback>) {
        self.callbacks.push(cb);
    }

    /// The test split (uint8 images in memory), e.g. for drawing prediction grids.
    pub fn test_split(&self) -> &crate::data::Dataset {
        &self.data.test
    }

    /// Whether every epoch has been trained, or early stopping ended the run.
    pub fn training_done(&self) -> bool {
        self.state.epoch >= self.cfg.train.epochs || self.state.early_stopped
    }

    /// The directory holding `last.*` and `best.*`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.run_dir.join(&self.cfg.output.checkpoint_dir)
    }

    /// Trains the remaining epochs, then evaluates on the test split and writes `eval.json`. The
    /// run is locked against other trainers from `new`/`resume` until `fit` returns.
    pub fn fit(&mut self) -> Result<EvalResult> {
        if self.lock.is_none() && self.writes_run() {
            self.lock = Some(run::lock(&self.run_dir)?);
        }
        let result = self.fit_locked();
        self.lock = None; // another process, or a resumed Trainer, may train the run now
        result
    }

    fn fit_locked(&mut self) -> Result<EvalResult> {
        let info = FitInfo {
            config: &self.cfg,
            start_epoch: self.state.epoch + 1,
            start_step: self.state.step,
            steps_per_epoch: self.steps_per_epoch(),
            batch_size: self.cfg.data.batch_size,
        };
        self.callbacks.iter_mut().for_each(|c| c.fit_start(&info));
        let val_loader = self.eval_loader(&self.data.val);
        let (mut last_val, mut restores) = (None, 0);
        while !self.training_done() {
            let epoch = self.state.epoch + 1;
            let val = match self.run_epoch(epoch, &val_loader) {
                Err(Error::Diverged { what, advice })
                    if self.cfg.train.on_nan == crate::config::OnNan::Restore && restores < MAX_RESTORES =>
                {
                    restores += 1;
                    self.restore_after_divergence(&what, &advice)?;
                    let step = self.state.step;
                    self.callbacks.iter_mut().for_each(|c| c.rewound(step));
                    continue;
                }
                other => other?,
            };
            if self.stop_after == Some(epoch) && epoch < self.cfg.train.epochs {
                return Ok(val);
            }
            last_val = Some(val);
            if self.state.early_stopped {
                crate::notice::info(format!(
                    "early stopping after epoch {epoch}: {} has not improved for {} epochs (best checkpoint: epoch {})",
                    self.cfg.train.early_stop_metric, self.cfg.train.early_stop_patience, self.state.best_epoch
                ));
                break;
            }
        }
        self.final_test(last_val)
    }

    /// After the last epoch: the test result (the last validation when it ran on the test split
    /// with the same TTA, else a test evaluation), written to `eval.json`.
    fn final_test(&mut self, last_val: Option<EvalResult>) -> Result<EvalResult> {
        let val_is_test = !self.cfg.data.has_val_split() && (self.cfg.train.val_tta || self.cfg.train.tta == 0);
        let test = match last_val {
            Some(val) if val_is_test => val, // validation ran on the test split, with the same TTA
            _ if self.stop_requested()? => {
                return Err(Error::Interrupted(format!(
                    "stopped before the final test (training finished, `last` saved); evaluate with: \
                     microvision eval {}",
                    self.run_dir.display()
                )))
            }
            _ => self.evaluate(&self.data.test)?,
        };
        if !self.writes_run() {
            return Ok(test);
        }
        fsio::write_json(
            &self.run_dir.join("eval.json"),
            &EvalFile::new(&test, &self.data.test.classes, "last", Tta::from_config(&self.cfg.train))
                .at(self.state.epoch, self.state.step),
        )?;
        self.callbacks.iter_mut().for_each(|c| c.fit_end(&test));
        run::update_peak_memory(&self.run_dir)?;
        Ok(test)
    }

    /// One epoch: train steps, evaluation, callbacks, checkpoints. Returns the validation result.
    fn run_epoch(&mut self, epoch: i64, val_loader: &EvalLoader) -> Result<EvalResult> {
        self.callbacks.iter_mut().for_each(|c| c.epoch_start(epoch));
        let (totals, secs_here) = self.train_epoch(epoch)?;
        let seen = totals.seen.max(1) as f64;
        crate::failpoint::hit("eval");
        let tta = if self.cfg.train.val_tta { Tta::from_config(&self.cfg.train) } else { Tta::none() };
        let val = self.evaluate_loader(val_loader, self.data.val.classes.len(), tta)?;
        // Decided before the checkpoint, so that it holds this epoch's early-stopping state.
        self.state.early_stopped = self.should_stop_early(&val);
        let is_best = self.close_epoch(epoch, &val, secs_here)?;
        let record = EpochInfo {
            epoch,
            step: self.state.step,
            train_loss: totals.loss_sum / seen,
            train_acc: totals.correct / seen,
            lr: self.lr_at(self.state.step.saturating_sub(1) as u64),
            img_per_s: totals.seen as f64 / totals.secs.max(1e-9),
            epoch_secs: totals.secs,
            val: val.clone(),
            is_best,
        };
        // The epoch's records before its checkpoints: a crash between them leaves a record that a
        // resume trains again (and the JSONL log replaces), never a checkpoint without its record.
        self.callbacks.iter_mut().for_each(|c| c.epoch_end(&record));
        if self.writes_run() {
            self.save_checkpoints(is_best)?;
        }
        Ok(val)
    }

    /// Evaluates the current weights on a split.
    pub fn evaluate(&self, split: &Dataset) -> Result<EvalResult> {
        self.evaluate_loader(&self.eval_loader(split), split.classes.len(), Tta::from_config(&self.cfg.train))
    }

    /// Early stopping: records `val` and says whether the watched metric has not improved for
    /// `train.early_stop_patience` epochs.
    fn should_stop_early(&mut self, val: &EvalResult) -> bool {
        let t = &self.cfg.train;
        if t.early_stop_patience == 0 {
            return false;
        }
        let score = if t.early_stop_metric == crate::config::EarlyStopMetric::ValLoss { -val.loss } else { val.acc };
        let (best, bad) = &mut self.state.early_stop;
        if score > *best + t.early_stop_min_delta {
            (*best, *bad) = (score, 0);
        } else {
            *bad += 1;
        }
        *bad >= t.early_stop_patience
    }

    fn lr_at(&self, step: u64) -> f64 {
        if let Some(lr) = self.lr_override {
            return lr;
        }
        self.schedule.lr(self.cfg.optim.lr, step, self.total_steps()) * self.state.lr_scale
    }

    fn compute_kind(&self) -> Option<Kind> {
        self.precision.autocast_kind()
    }
}

/// The weight averages the config asks for, started from the current weights: EMA
/// (`train.ema_decay` > 0) and lookahead's slow weights (`train.lookahead_every` > 0).
fn fresh_averages(vs: &tch::nn::VarStore, t: &crate::config::TrainConfig) -> (Option<Ema>, Option<Lookahead>) {
    let ema = (t.ema_decay > 0.0).then(|| Ema::new(vs, t.ema_decay));
    let lookahead = (t.lookahead_every > 0).then(|| Lookahead::new(vs, t.lookahead_every as u64));
    (ema, lookahead)
}
